"""Validate OpenLineage events offline: the official core schema + every facet whose ``_schemaURL`` we know.

The OpenLineage core schema types facets only as ``RunFacet`` / ``InputDatasetFacet`` (``_producer`` and
``_schemaURL``); a facet's own fields are checked against the schema its ``_schemaURL`` points to. Schemas
are loaded from local files and resolved through a ``referencing`` registry keyed by their ``$id`` (no
network). Formats (uri, date-time, uuid) are checked when the validators are installed (jsonschema's
``format-nongpl`` extras: rfc3339-validator, rfc3986-validator).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


class LineageSchemas:
    def __init__(self, files: Iterable[Path]) -> None:
        resources = []
        self.ids: set[str] = set()
        for f in files:
            doc = json.loads(f.read_text())
            resources.append((doc["$id"], Resource.from_contents(doc)))
            self.ids.add(doc["$id"])
        self.registry: Registry[Any] = Registry().with_resources(resources)
        self.core_id = next(i for i in self.ids if i.endswith("/OpenLineage.json"))

    @classmethod
    def from_dirs(cls, *dirs: Path) -> LineageSchemas:
        return cls([p for d in dirs for p in sorted(d.rglob("*.json"))])

    def _validator(self, ref: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": ref}, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def errors(self, event: dict[str, Any]) -> list[str]:
        """Every problem: against the core RunEvent schema, then each facet against its own schema."""
        out = [
            f"event: {e.json_path}: {e.message}"
            for e in self._validator(event.get("schemaURL", "")).iter_errors(event)
        ]
        for where, name, facet in _facets(event):
            url = facet.get("_schemaURL") if isinstance(facet, dict) else None
            if not isinstance(url, str):
                out.append(f"{where}.{name}: no _schemaURL")
                continue
            if url.split("#", 1)[0] not in self.ids:
                out.append(f"{where}.{name}: unknown schema {url}")
                continue
            out.extend(
                f"{where}.{name}: {e.json_path}: {e.message}" for e in self._validator(url).iter_errors(facet)
            )
        return out


def _facets(event: dict[str, Any]) -> Iterable[tuple[str, str, Any]]:
    for name, facet in (event.get("run", {}).get("facets") or {}).items():
        yield "run.facets", name, facet
    for name, facet in (event.get("job", {}).get("facets") or {}).items():
        yield "job.facets", name, facet
    for i, ds in enumerate(event.get("inputs") or []):
        for key in ("facets", "inputFacets"):
            for name, facet in (ds.get(key) or {}).items():
                yield f"inputs[{i}].{key}", name, facet
    for i, ds in enumerate(event.get("outputs") or []):
        for key in ("facets", "outputFacets"):
            for name, facet in (ds.get(key) or {}).items():
                yield f"outputs[{i}].{key}", name, facet
