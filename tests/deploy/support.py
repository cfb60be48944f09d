"""Helpers of the deployment tests: the real helm binary, rendered manifests, and the settings' env names."""

from __future__ import annotations

import os
import re
import subprocess
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "floe-stream"
HELM_BIN = REPO / ".tools" / "helm"
VALUES_DIR = Path(__file__).parent / "values"
SCHEMAS_DIR = Path(__file__).parent / "schemas"
KUBE_VERSION = "1.33.0"
RELEASE = "floe-stream"
NAMESPACE = "data"

# Env names that must never carry a plain value (the chart's values.schema.json uses the same rule).
SECRETISH = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|DSN|API_?KEY|PRIVATE_?KEY|ROUTING_?KEY|CREDENTIAL|HMAC|WEBHOOK_URL)"
)

# FLOE_* names used by the deployables that are not (yet) fields of floe_stream.settings.Settings.
# Keep this minimal: every entry is a setting another part of the code reads outside Settings.
ENV_ALLOW_LIST: set[str] = set()


@dataclass(frozen=True)
class Deployable:
    name: str
    values_key: str
    args: tuple[str, ...]
    group: str | None
    needs_database: bool


DEPLOYABLES = {
    d.name: d
    for d in (
        Deployable("processor", "processor", ("run", "processor"), "floe-processor", False),
        Deployable("ticker", "ticker", ("run", "ticker"), None, False),
        Deployable("sink-postgres", "sinkPostgres", ("run", "sink", "postgres"), "floe-sink-postgres", True),
        Deployable("sink-alerts", "sinkAlerts", ("run", "sink", "alerts"), "floe-sink-alerts", True),
        Deployable(
            "sink-openlineage",
            "sinkOpenlineage",
            ("run", "sink", "openlineage"),
            "floe-sink-openlineage",
            False,
        ),
        Deployable("source-iceberg", "sourceIceberg", ("run", "source", "iceberg"), None, False),
    )
}


def values_files() -> list[str]:
    """The values matrix every rendering test runs over."""
    return sorted(p.name for p in VALUES_DIR.glob("*.yaml"))


class HelmFailed(AssertionError):
    pass


@dataclass
class Helm:
    """The real helm CLI, with its cache/config/data directories in a temporary folder."""

    binary: Path
    home: Path
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    @staticmethod
    def _value_args(
        values: Iterable[Path | str] = (),
        set_: Iterable[str] = (),
        set_string: Iterable[str] = (),
        set_file: Iterable[str] = (),
        set_json: Iterable[str] = (),
    ) -> list[str]:
        args: list[str] = []
        for v in values:
            path = Path(v)
            args += ["-f", str(path if path.is_absolute() else VALUES_DIR / path)]
        for flag, items in (
            ("--set", set_),
            ("--set-string", set_string),
            ("--set-file", set_file),
            ("--set-json", set_json),
        ):
            for item in items:
                args += [flag, item]
        return args

    def template(self, *values: Path | str, **kw: Iterable[str]) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *self._value_args(values, **kw),
        )

    def render_text(self, *values: Path | str, **kw: Iterable[str]) -> str:
        proc = self.template(*values, **kw)
        if proc.returncode != 0:
            raise HelmFailed(f"helm template failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout

    def render(self, *values: Path | str, **kw: Iterable[str]) -> Manifests:
        return Manifests.parse(self.render_text(*values, **kw))

    def render_error(self, *values: Path | str, **kw: Iterable[str]) -> str:
        """Render and expect helm to refuse; returns its error output."""
        proc = self.template(*values, **kw)
        assert proc.returncode != 0, (
            f"helm accepted values it should refuse ({values}, {kw}):\n{proc.stdout[:2000]}"
        )
        return proc.stderr


class Manifests(list[dict[str, Any]]):
    @classmethod
    def parse(cls, text: str) -> Manifests:
        return cls(d for d in yaml.safe_load_all(text) if d)

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, (
            f"expected one {kind} {name}, found {[d['metadata']['name'] for d in self.kind(kind)]}"
        )
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {d["metadata"]["name"] for d in self.kind(kind)}


def full(name: str) -> str:
    """Resource name of a deployable for the test release."""
    return f"{RELEASE}-{name}"


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names in {container['name']}: {names}"
    return {e["name"]: e for e in entries}


def iter_env(manifests: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, env entry) for every container of every Deployment and Job."""
    for doc in manifests:
        if doc["kind"] in ("Deployment", "Job"):
            for c in containers(doc):
                for e in c.get("env", []):
                    yield doc["metadata"]["name"], e


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return True
    return origin is not None and any(_is_mapping(arg) for arg in typing.get_args(annotation))


def _settings_env() -> tuple[set[str], set[str]]:
    """(names, prefixes): every environment variable name floe_stream.settings.Settings reads, nested models
    included, and the prefixes of dict-valued fields (FLOE_X__PROPS__<any key>)."""
    from floe_stream.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix") or "")
    delimiter = str(Settings.model_config.get("env_nested_delimiter") or "__")
    names: set[str] = set()
    prefixes: set[str] = set()

    def walk(model: type[BaseModel], path: list[str]) -> None:
        for field_name, info in model.model_fields.items():
            key = [*path, field_name]
            name = prefix.upper() + delimiter.join(k.upper() for k in key)
            names.add(name)
            if _is_mapping(info.annotation):
                prefixes.add(name + delimiter)
            for sub in _models_in(info.annotation):
                walk(sub, key)

    walk(Settings, [])
    return names, prefixes


def settings_env_names() -> set[str]:
    return _settings_env()[0]


def unknown_floe_env(names: Iterable[str]) -> set[str]:
    """The FLOE_* names among `names` that Settings does not read (and the allow-list does not excuse)."""
    known, prefixes = _settings_env()
    return {
        n
        for n in names
        if n.startswith("FLOE_") and n not in known | ENV_ALLOW_LIST and not n.startswith(tuple(prefixes))
    }
