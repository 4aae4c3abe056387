"""What a chaos run (:mod:`modomo.demo.chaos`) does and what it found: the plan, its
seeded inputs and fault schedule, and the report with its table.

Pure: no process, no server; the same seed gives the same planted inputs and schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from modomo.demo.chaos_checks import Verdict
from modomo.synthetic.rooms import room

FAULTS = ("worker", "projector", "redis", "postgres", "s3")
"""Every kind of fault, each injected ``rounds`` times per run."""


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    """What a run does; the same seed gives the same inputs and the same fault schedule."""

    state: Path
    scenes: int = 200
    seed: int = 1
    rounds: int = 1
    """How many times each kind of fault is injected."""
    size: tuple[int, int] = (1024, 768)
    """Width and height of the synthetic rooms."""
    within_s: float = 900.0
    """How long the job may take before the run gives up on it."""
    resume_within_s: float = 240.0
    """How long work may stay stalled after a fault."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: its kind, the number of scenes done that arms it, the pause
    after that and, for the servers, how long they stay down."""

    kind: str
    after_done: int
    pause_s: float
    down_s: float


@dataclass(slots=True)
class FaultRecord:
    """What happened at one fault (``resumed_s`` None: work never resumed)."""

    kind: str
    at_s: float
    done_before: int
    in_flight: int | None
    """Tasks delivered and not yet acknowledged when it struck (None: not readable)."""
    over_at: float = float("inf")
    """When the fault was over: the server started again, the process killed (monotonic)."""
    done_restored: int | None = None
    """Scenes done at the first reading after ``over_at``."""
    projected_restored: int | None = None
    done_after: int = 0
    resumed_s: float | None = None
    """Seconds from the fault until both a scene and the projectors had moved on past
    where they were once it was over."""


def planted(seed: int, scenes: int) -> dict[int, tuple[str, bytes]]:
    """The bad inputs, by position in the job: a text file and a truncated JPEG, both sent
    as ``image/jpeg``."""
    rng = random.Random(f"planted-{seed}")
    text, cut = rng.sample(range(scenes), 2)
    whole = room(seed + 10_000, 320, 240)
    return {
        text: ("notes.jpg", b"this is a shopping list, not a photo\n" * 20),
        cut: ("truncated.jpg", whole[: len(whole) // 2]),
    }


def schedule(seed: int, good: int, rounds: int = 1) -> list[Fault]:
    """Each fault kind ``rounds`` times, in a seeded order, armed at distinct seeded
    counts of scenes done between about 5 % and 60 % of ``good``: a server fault blocks the
    schedule while the server restarts and the job may move on meanwhile, so the last fault
    must come early enough to strike before the job ends, even a small one on an idle
    machine."""
    rng = random.Random(f"faults-{seed}")
    kinds = [kind for _ in range(rounds) for kind in rng.sample(FAULTS, len(FAULTS))]
    low, high = max(1, good // 20), max(int(good * 0.6), len(kinds) + 1)
    marks = sorted(rng.sample(range(low, min(high, good - 1) + 1), len(kinds)))
    return [
        Fault(kind, mark, round(rng.uniform(0.0, 1.5), 2), round(rng.uniform(1.0, 3.0), 2))
        for kind, mark in zip(kinds, marks, strict=True)
    ]


@dataclass(slots=True)
class ChaosReport:
    """The run's outcome: the invariants, the faults, the wall time."""

    plan: ChaosPlan
    verdict: Verdict
    faults: list[FaultRecord]
    restarts: dict[str, int]
    wall_s: float
    orphans: list[int] = field(default_factory=list)
    crash_loop: str = ""

    @property
    def operator_actions(self) -> int:
        return self.verdict.operator_actions + (1 if self.crash_loop else 0)

    @property
    def failures(self) -> list[str]:
        """Each invariant that does not hold, in a sentence."""
        out = list(self.verdict.failures)
        if len(self.faults) != len(FAULTS) * self.plan.rounds:
            out.append(f"only {len(self.faults)} faults were injected")
        for fault in self.faults:
            if not 0 < fault.done_before < self.verdict.good:
                out.append(f"the {fault.kind} fault struck outside the job's work")
            if fault.resumed_s is None:
                out.append(f"work never resumed after the {fault.kind} fault")
        if self.orphans:
            out.append(f"processes left behind: {self.orphans}")
        if self.crash_loop:
            out.append(self.crash_loop)
        return out

    def table(self) -> str:
        v = self.verdict
        rows = [
            ("scenes done exactly once", f"{v.done_once}/{v.good}"),
            (
                "scenes dead (expected: only the planted bad inputs)",
                f"{len(v.dead)} ({'only the planted' if v.dead == v.planted else 'NOT the planted'}"
                f" {len(v.planted)})",
            ),
            ("events lost", str(v.events_lost)),
            ("read models equal to a fresh replay of the log", "yes" if v.replay_equal else "NO"),
            ("orphan processes", str(len(self.orphans))),
            ("operator actions needed", str(self.operator_actions)),
            ("wall time", f"{self.wall_s:.0f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        right = max(len(value) for _, value in rows)
        lines = [f"chaos run: {self.plan.scenes} scenes, seed {self.plan.seed}", ""]
        lines += [f"| {'invariant':<{width}} | {'result':<{right}} |"]
        lines += [f"|{'-' * (width + 2)}|{'-' * (right + 2)}|"]
        lines += [f"| {name:<{width}} | {value:<{right}} |" for name, value in rows]
        lines += ["", "| fault | at s | scenes done | in flight | work resumed after |"]
        lines += ["|-------|------|-------------|-----------|--------------------|"]
        for f in self.faults:
            resumed = f"{f.resumed_s:.1f} s" if f.resumed_s is not None else "never"
            flight = "?" if f.in_flight is None else str(f.in_flight)
            lines.append(
                f"| {f.kind} | {f.at_s:.0f} | {f.done_before} -> {f.done_after} | {flight} "
                f"| {resumed} |"
            )
        restarts = ", ".join(f"{name} {n}" for name, n in sorted(self.restarts.items()))
        lines += ["", f"supervisor restarts: {restarts}"]
        failures = self.failures
        lines.append("all invariants hold" if not failures else "FAILED: " + "; ".join(failures))
        return "\n".join(lines)
