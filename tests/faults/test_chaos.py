"""``bench/chaos.py``'s code path, small: 24 scenes (two of them planted bad inputs), each
fault once (worker and projectors SIGKILLed, Redis, PostgreSQL and SeaweedFS SIGKILLed and
started again), seed 7. Every invariant holds, and each fault struck mid-job: scenes were
done before it and after it, and fewer than all when it struck."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modomo.demo.chaos import run_chaos
from modomo.demo.chaos_plan import FAULTS, ChaosPlan

pytestmark = pytest.mark.integration


def _events(log: Path) -> list[str]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(str(record.get("event")))
    return out


@pytest.mark.timeout(420)
async def test_a_small_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    said: list[str] = []
    plan = ChaosPlan(state=tmp_path / "chaos", scenes=24, seed=7, size=(640, 480), within_s=300)
    report = await run_chaos(plan, said.append)
    logs = plan.state / "logs"
    assert report.failures == [], report.table() + "\n" + "\n".join(said)

    verdict = report.verdict
    assert (verdict.good, verdict.done_once) == (22, 22)
    assert verdict.dead == verdict.planted
    assert len(verdict.planted) == 2
    assert verdict.events_lost == 0
    assert verdict.replay_equal
    assert report.orphans == []
    assert report.operator_actions == 0

    # Each fault once, each while the job was under way, and work went on after each.
    assert sorted(f.kind for f in report.faults) == sorted(FAULTS)
    for fault in report.faults:
        assert 0 < fault.done_before < verdict.good, fault
        assert fault.done_restored is not None, fault
        assert fault.done_after > fault.done_restored >= fault.done_before, fault
        assert fault.resumed_s is not None
    # The supervisor restarted what was killed; the killed worker's scene was taken over.
    assert report.restarts["worker"] == 1
    assert report.restarts["projectors"] == 1
    [worker_fault] = [f for f in report.faults if f.kind == "worker"]
    assert worker_fault.in_flight is not None
    assert worker_fault.in_flight >= 1
    worker = _events(logs / "worker.log")
    assert "task_abandoned" in worker  # "worker ... stopped responding": claimed again
    assert {"redis_unreachable", "redis_reachable"} <= set(worker)
    assert "projector_connection_lost" in _events(logs / "projectors.log")
    assert "all invariants hold" in report.table()
