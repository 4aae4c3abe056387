"""Every Redis key Modomo uses, built from one prefix (``modomo`` by default)."""

from __future__ import annotations

from dataclasses import dataclass

GPU_GROUP = "gpu-workers"
"""The consumer group of the scene task queue."""

EXPORT_GROUP = "exporters"
"""The consumer group of the export queue."""

TASK_FIELD = b"task"
"""Field of a queue entry holding the encoded scene task (also named in log.py's script)."""

EVENT_FIELD = b"event"
"""Field of a log or job-stream entry holding the encoded event (also in log.py's script)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix; tests use a fresh prefix each instead of flushing Redis."""

    prefix: str = "modomo"

    @property
    def events(self) -> str:
        """The whole event log, read in order by every projector."""
        return f"{self.prefix}:events"

    @property
    def queue(self) -> str:
        """One entry per scene task; consumed by the ``gpu-workers`` group."""
        return f"{self.prefix}:jobs:queue"

    @property
    def dead(self) -> str:
        """Scene tasks that failed every attempt, or could not be read at all."""
        return f"{self.prefix}:jobs:dead"

    def job_events(self, job_id: str) -> str:
        """One job's progress and result events, served over SSE."""
        return f"{self.prefix}:jobs:events:{job_id}"

    def lock(self, scene_id: str) -> str:
        """The worker that owns a scene right now (string with a TTL)."""
        return f"{self.prefix}:locks:{scene_id}"

    def attempts(self, entry_id: str) -> str:
        """Errors of each failed delivery of one queue entry, kept until it ends."""
        return f"{self.prefix}:jobs:attempts:{entry_id}"

    def write_mark(self, entry_id: str) -> str:
        """The id of the last write a delivery of this entry made: a write retried after a
        dropped connection is skipped when it had landed (deleted with the ack)."""
        return f"{self.prefix}:jobs:write:{entry_id}"

    def done(self, job_id: str) -> str:
        """Scenes of a job whose results are in the log: a redelivery of one is only acked."""
        return f"{self.prefix}:jobs:done:{job_id}"

    def job_meta(self, job_id: str) -> str:
        """Hash: the job's scene count and how many scenes ended ok, partial or failed."""
        return f"{self.prefix}:jobs:meta:{job_id}"

    def job_ended(self, job_id: str) -> str:
        """Set: scenes of the job that have ended, whatever the outcome."""
        return f"{self.prefix}:jobs:ended:{job_id}"

    def api_wake(self, process: str) -> str:
        """Stream of one entry (with a TTL) that wakes one API process's SSE reader."""
        return f"{self.prefix}:api:wake:{process}"

    @property
    def dead_by_reason(self) -> str:
        """Hash: how many tasks went dead for each reason since the stream was created."""
        return f"{self.prefix}:jobs:dead:reasons"

    @property
    def exports(self) -> str:
        """One entry per requested dataset export; consumed by the ``exporters`` group."""
        return f"{self.prefix}:exports:queue"

    def export_progress(self, export_id: str) -> str:
        """Hash: how many of an export's scenes are packed (``done``, ``total``)."""
        return f"{self.prefix}:exports:progress:{export_id}"

    def upload_org(self, scene_id: str) -> str:
        """String: the organisation a scene's upload was presigned for (until registered)."""
        return f"{self.prefix}:uploads:org:{scene_id}"

    def write_rate(self, caller_digest: str, window: int) -> str:
        """Counter: writes of one caller in one rate-limit window (expires after it)."""
        return f"{self.prefix}:ratelimit:writes:{caller_digest}:{window}"
