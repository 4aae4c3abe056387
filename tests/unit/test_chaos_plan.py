"""The chaos run's seeded plan and its report (``modomo/demo/chaos_plan.py``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from modomo.demo.chaos_checks import Verdict
from modomo.demo.chaos_plan import FAULTS, ChaosPlan, ChaosReport, FaultRecord, schedule


@given(st.integers(0, 2**32), st.integers(12, 2000), st.integers(1, 3))
def test_every_fault_kind_strikes_rounds_times_at_distinct_moments_mid_job(
    seed: int, good: int, rounds: int
) -> None:
    if good < 6 * rounds:
        return  # not enough scenes for that many faults; the command refuses such runs
    faults = schedule(seed, good, rounds)
    assert Counter(f.kind for f in faults) == dict.fromkeys(FAULTS, rounds)
    marks = [f.after_done for f in faults]
    assert marks == sorted(set(marks))  # distinct, in order
    assert all(0 < m < good for m in marks)
    assert schedule(seed, good, rounds) == faults  # the seed decides everything


def test_different_seeds_draw_different_moments() -> None:
    assert schedule(1, 198) != schedule(2, 198)


def _report(**changes: object) -> ChaosReport:
    verdict = Verdict(good=10, planted={"a", "b"}, done_once=10, dead={"a", "b"}, replay_equal=True)
    faults = [FaultRecord(kind, 1.0, 3, 1, done_after=4, resumed_s=2.0) for kind in FAULTS]
    report = ChaosReport(ChaosPlan(state=Path("/nonexistent")), verdict, faults, {}, 12.0)
    for name, value in changes.items():
        setattr(report, name, value)
    return report


def test_a_clean_report_has_no_failures_and_says_so() -> None:
    report = _report()
    assert report.failures == []
    assert "all invariants hold" in report.table()


def test_the_report_fails_a_fault_outside_the_job_stalled_work_orphans_and_a_crash_loop() -> None:
    late = [FaultRecord(kind, 1.0, 10, 0, done_after=10) for kind in FAULTS]
    failures = _report(faults=late[:4], orphans=[4242], crash_loop="api exited 6 times").failures
    assert "only 4 faults were injected" in failures
    assert "the worker fault struck outside the job's work" in failures
    assert "work never resumed after the redis fault" in failures
    assert "processes left behind: [4242]" in failures
    assert "api exited 6 times" in failures
