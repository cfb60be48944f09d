"""Dockerfile: a multi-stage python:3.11-slim build of the wheel into a venv, run as a non-root user with
`floe` as the entrypoint."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from tests.deploy.support import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instr in instructions():
        if instr[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instr)
    return result


def build_args() -> dict[str, str]:
    args = {}
    for keyword, value in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in value:
            key, default = value.split("=", 1)
            args[key] = default
    return args


def base_image(from_args: str) -> str:
    image = from_args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: build_args()[m.group(1)], image)


def last(stage: list[tuple[str, str]], keyword: str) -> str:
    values = [v for k, v in stage if k == keyword]
    assert values, f"no {keyword} in the final stage"
    return values[-1]


def test_multi_stage_on_python_311_slim() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        assert base_image(stage[0][1]).startswith("python:3.11-slim")


def test_wheel_is_built_and_installed_into_a_venv() -> None:
    build, runtime = stages()[0], stages()[-1]
    build_runs = " ".join(v for k, v in build if k == "RUN")
    assert "pip wheel" in build_runs
    assert "-m venv /opt/floe" in build_runs
    assert re.search(r"/opt/floe/bin/pip install \S*\.whl", build_runs)
    copies = [v for k, v in runtime if k == "COPY"]
    assert any(c.startswith("--from=") and "/opt/floe" in c for c in copies)
    runtime_text = " ".join(v for _, v in runtime)
    assert "pip wheel" not in runtime_text
    assert not any(" src" in f" {c}" for c in copies), "no sources in the runtime image"
    assert "/opt/floe/bin" in last(runtime, "ENV")


def test_runs_as_non_root() -> None:
    runtime = stages()[-1]
    user = last(runtime, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"
    assert int(uid) == 10001
    creates = " ".join(v for k, v in runtime if k == "RUN")
    assert "--uid 10001" in creates


def test_entrypoint_is_floe() -> None:
    runtime = stages()[-1]
    assert json.loads(last(runtime, "ENTRYPOINT")) == ["floe"]
    assert json.loads(last(runtime, "CMD")) == ["run", "processor"]
    assert "8080" in last(runtime, "EXPOSE").split()
    assert "/healthz" in last(runtime, "HEALTHCHECK")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "floe" in scripts, "the entrypoint is the package's console script"


@pytest.mark.parametrize("needed", ["pyproject.toml", "src/"])
def test_dockerignore_keeps_what_the_build_copies(needed: str) -> None:
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allow-list"
    assert f"!{needed}" in patterns
