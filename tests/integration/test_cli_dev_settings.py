"""`FLOE_CLOCK_SKEW_S=5 floe dev`: the environment reaches the services `floe dev` runs (its dev defaults
sit below the environment, .env and FLOE_CONFIG_FILE; its flags above)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

FLOE = str(Path(sys.executable).parent / "floe")


@pytest.mark.slow
def test_floe_dev_takes_settings_from_the_environment_and_the_config_file() -> None:
    # not pytest's tmp_path: the embedded server runs as another user and needs a world-readable parent
    tmp = Path(tempfile.mkdtemp(prefix="floe-dev-settings-"))
    try:
        config = tmp / "floe.yaml"
        config.write_text("tick_interval_s: 3\nclock_skew_s: 40\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOE_")}
        env.update(COLUMNS="200", FLOE_CLOCK_SKEW_S="5", FLOE_CONFIG_FILE=str(config))
        res = subprocess.run(
            [FLOE, "dev", "--duration", "1", "--data-dir", str(tmp / "dev")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:]
        # environment (5) over the file (40) over the dev default (60); the file (3) over the dev default (5)
        assert "tick 3s, clock skew 5s" in out, out[-3000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
