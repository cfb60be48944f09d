"""A contract against the official ODCS JSON Schema of its ``apiVersion`` (``floe contracts lint --schema``).

The schemas are the standard's own files (``odcs_schemas/``, Apache-2.0, from bitol-io/open-data-contract-
standard): what the standard's authors check, stricter than what floe needs to monitor a contract (floe
reads many contracts written for v3.1 under a v3.0 ``apiVersion``; the schema of that version refuses them).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["SCHEMA_VERSIONS", "schema_problems"]

_DIR = Path(__file__).parent / "odcs_schemas"
SCHEMA_VERSIONS = tuple(sorted(p.stem.removeprefix("odcs-json-schema-") for p in _DIR.glob("*.json")))
"""The apiVersions whose official JSON Schema is bundled (``v3.0.0`` …)."""


@cache
def _validator(version: str) -> Any:
    schema = json.loads((_DIR / f"odcs-json-schema-{version}.json").read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def schema_problems(doc: object) -> list[str]:
    """Each place ``doc`` (the parsed YAML/JSON) breaks the official JSON Schema of its ``apiVersion``, as
    ``<path>: <what>``; one line saying so when no schema of that version is bundled."""
    version = str(doc.get("apiVersion")) if isinstance(doc, dict) else ""
    if version not in SCHEMA_VERSIONS:
        return [
            f"apiVersion {version or None!r}: no official ODCS JSON Schema of that version is bundled "
            f"({', '.join(SCHEMA_VERSIONS)}); not checked against one"
        ]
    errors = sorted(_validator(version).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    out: list[str] = []
    for err in errors:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
        line = f"{where or '(top level)'}: {_short(err.message)} (ODCS {version} JSON Schema)"
        if line not in out:
            out.append(line)
    return out


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:199] + "…"
