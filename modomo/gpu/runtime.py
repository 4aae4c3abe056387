"""Process-wide set-up for model inference: offline switches, threads, device and precision.

Chosen once per process and passed to every model and stage, so no stage decides on its own
which device or dtype it runs in.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_OFFLINE_VARS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
}


def prepare_environment(*, offline: bool = True) -> None:
    """Set the variables model libraries read at import time; call before importing them.

    Without ``YOLO_OFFLINE`` importing ultralytics looks up DNS names, and a missing weights
    file makes it try to download; hub loads retry for tens of seconds before failing. The
    worker loads everything from its model directory, so it never needs the network.
    Existing values win, so an operator can still turn a switch off.
    """
    if offline:
        for name, value in _OFFLINE_VARS.items():
            os.environ.setdefault(name, value)
    scratch = os.path.join(tempfile.gettempdir(), f"modomo-{os.getuid()}")
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(scratch, "ultralytics"))
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(scratch, "matplotlib"))


@dataclass(frozen=True, slots=True)
class Runtime:
    """Where and in which precision models run."""

    device: str
    """``cpu`` or ``cuda[:N]``."""
    dtype_name: str
    """``float32``, ``bfloat16`` or ``float16``: the autocast dtype on CUDA."""
    threads: int
    """CPU threads torch uses for intra-op work."""

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision on CUDA (weights stay float32); nothing on the CPU."""
        import torch

        if not self.cuda or self.dtype_name == "float32":
            return contextlib.nullcontext()
        autocast: contextlib.AbstractContextManager[Any] = torch.autocast(
            device_type="cuda", dtype=self.dtype
        )
        return autocast

    def restore_threads(self) -> None:
        """Undo what a CPU ultralytics predict does to the process-wide thread count.

        ``predict`` on the CPU calls ``torch.set_num_threads(cpu_count - 1)`` for the whole
        process (1 on a 2-core machine), which would slow every later stage.
        """
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def choose_runtime(device: str = "auto", threads: int = 0) -> Runtime:
    """Pick the device (``auto``: CUDA when present) and the precision it supports best."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA device")
    threads = threads or max(os.cpu_count() or 1, 1)
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    else:
        dtype = "float32"
    return Runtime(device=device, dtype_name=dtype, threads=threads)


def gpu_memory_used(runtime: Runtime | None = None) -> int:
    """Bytes of GPU memory torch holds now (0 on the CPU)."""
    import torch

    if runtime is not None and not runtime.cuda:
        return 0
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_allocated())


@contextlib.contextmanager
def inference(runtime: Runtime) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast: every model forward runs inside this."""
    import torch

    with torch.inference_mode(), runtime.autocast():
        yield
