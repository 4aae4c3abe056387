"""Chaos: one job through the whole product while its parts are killed at random moments.

    python bench/chaos.py [--seed 1] [--scenes 200] [--long] [--state DIR]

Starts a Modomo of its own (Redis with AOF, a PostgreSQL cluster and SeaweedFS on free
ports; the API, the projectors and one tiny-profile GPU worker under the supervisor of
``modomo up``), uploads ``--scenes`` synthetic rooms, two of them planted bad inputs (a text
file and a truncated JPEG, both sent as image/jpeg), and runs one job over them. As the
job runs it SIGKILLs the worker and the projectors (the supervisor restarts them) and
SIGKILLs Redis, PostgreSQL and SeaweedFS and starts each again, each once (``--long``: three
times and 600 scenes), at moments drawn from ``--seed``. Then it prints the invariants:

    scenes done exactly once | scenes dead (only the planted) | events lost (0) |
    read models equal to a fresh replay of the log | orphan processes (0) |
    operator actions needed (0) | wall time

and exits 1 when one fails. Needs root (PostgreSQL runs as the postgres user). The default
size fits in 10 minutes on a 2-core machine. The code is :mod:`modomo.demo.chaos`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modomo.demo.chaos import run_chaos
from modomo.demo.chaos_plan import ChaosPlan
from modomo.demo.pgservers import available
from modomo.logs import configure_logging
from modomo.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="draws the faults' moments")
    parser.add_argument("--scenes", type=int, default=None, help="scenes in the job (200)")
    parser.add_argument("--long", action="store_true", help="600 scenes, each fault three times")
    parser.add_argument("--state", type=Path, default=None, help="keep data and logs here")
    args = parser.parse_args(argv)
    scenes = args.scenes or (600 if args.long else 200)
    if scenes < 20:
        parser.error("--scenes: at least 20, so every fault can strike mid-job")
    if (why := available()) is not None:
        print(f"bench/chaos.py cannot run here: {why}", file=sys.stderr)
        return 1
    configure_logging(Settings.from_env(log_level="warning"))  # restarts stay visible
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    state = args.state or Path(tempfile.mkdtemp(prefix="modomo-chaos-"))
    plan = ChaosPlan(
        state=state,
        scenes=scenes,
        seed=args.seed,
        rounds=3 if args.long else 1,
        within_s=2400 if args.long else 900,
    )
    report = asyncio.run(run_chaos(plan, lambda line: print(line, file=sys.stderr, flush=True)))
    print(report.table())
    if args.state is None and not report.failures:
        shutil.rmtree(state, ignore_errors=True)
    elif report.failures:
        print(f"logs kept in {state / 'logs'}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
