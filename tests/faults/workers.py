"""Worker processes a fault test (or ``bench/chaos.py``) starts, kills and inspects.

``WorkerProcess(settings, module)`` runs ``python -m <module>`` (a streams worker with a
test handler: :mod:`tests.integration.worker_proc`, :mod:`tests.faults.storage_proc`)
with the settings in its environment, logging JSON lines to a file of its own, and waits
for its ``ready`` line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from modomo.settings import Settings
from tests.integration.support import ROOT, settings_env, stop_process

STREAMS_WORKER = "tests.integration.worker_proc"
"""The scene-id-driven handler of :mod:`tests.integration.handlers`."""
STORAGE_WORKER = "tests.faults.storage_proc"
"""A handler that downloads each original from S3 as the GPU worker does, decodes it and
stores an artifact."""


class WorkerProcess:
    """One worker process; its log (JSON lines) is kept in ``log_path``."""

    def __init__(
        self, settings: Settings, log_path: Path, module: str = STREAMS_WORKER, **env: str
    ) -> None:
        self.log_path = log_path
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=settings_env(settings) | env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.proc.kill()
            raise AssertionError(f"worker did not start: {line!r}\n{self.log_text()[-3000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM (SIGKILL after 10 s); the exit status."""
        stop_process(self.proc)
        return int(self.proc.returncode)

    def wait(self, within_s: float) -> int:
        return int(self.proc.wait(within_s))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log lines whose ``event`` is ``name``."""
        out = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == name:
                out.append(record)
        return out
