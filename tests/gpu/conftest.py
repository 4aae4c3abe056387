"""GPU-worker tests: tiny models with random weights, on the CPU, with no network.

The offline switches are set here, before any test module imports a model library:
``import ultralytics`` alone looks up DNS names unless ``YOLO_OFFLINE`` is set. The tiny
model directory is written and loaded once per session (about 10 s), through the same
loader the real weights use. Where the ``gpu`` extra is not installed (the dev set-up of
``scripts/bootstrap.sh``), this folder's tests are not collected at all.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modomo.gpu.models import Models
    from modomo.settings import Settings

GPU_MODULES = ("torch", "ultralytics", "sam2", "transformers", "open_clip", "sklearn", "cv2")
MISSING = [name for name in GPU_MODULES if importlib.util.find_spec(name) is None]
if MISSING:
    # Not installed: pip install -e '.[gpu]' to run these.
    collect_ignore_glob = ["test_*.py"]

_scratch = Path(tempfile.mkdtemp(prefix="modomo-gpu-tests-"))
for name, value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
    "YOLO_CONFIG_DIR": str(_scratch / "ultralytics"),
    "MPLCONFIGDIR": str(_scratch / "matplotlib"),
}.items():
    os.environ[name] = value


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's model directory (about 170 MB) and ultralytics settings."""
    shutil.rmtree(_scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def gpu_settings() -> Settings:
    from modomo.settings import Settings

    return Settings.from_env(
        {}, model_profile="tiny", model_dir=str(_scratch / "models"), device="cpu", model_seed=0
    )


@pytest.fixture(scope="session")
def models(gpu_settings: Settings) -> Models:
    from modomo.gpu.registry import get_models

    return get_models(gpu_settings)


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    root.mkdir()
    return root
