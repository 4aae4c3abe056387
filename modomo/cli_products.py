"""The dataset products' subcommands: ``export``, ``exporter``, ``eval``, ``golden``.

Kept apart from :mod:`modomo.cli` (which only registers them) so the commands and their
imports (pycocotools, pyarrow, scikit-image: the ``products`` extra) load only when used.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis

from modomo.domain.events import EvaluationRecorded
from modomo.settings import Settings
from modomo.streams.keys import Keys

FORMATS = ("coco", "yolo", "yolo-seg", "parquet")


def add_commands(sub: Any) -> None:
    """Register the subcommands on ``modomo``'s subparsers."""
    export = sub.add_parser(
        "export", help="a dataset as of a log position: COCO, YOLO or Parquet, in a zip"
    )
    export.add_argument("dataset", help="dataset id")
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument(
        "--as-of",
        default="",
        help="a log entry id (ms-seq), an event id or an ISO time (default: the end of the log)",
    )
    export.add_argument(
        "--reviewed-only", action="store_true", help="only approved or fixed objects"
    )
    export.add_argument("--out", help="the zip to write (default <dataset>-<format>-<pos>.zip)")
    export.set_defaults(run=_export)

    exporter = sub.add_parser("exporter", help="serve the export queue until SIGTERM/SIGINT")
    exporter.set_defaults(run=_exporter)

    evaluate = sub.add_parser("eval", help="score a job against a golden set (COCO + extensions)")
    evaluate.add_argument("--golden", required=True, type=Path, help="ground-truth JSON")
    evaluate.add_argument("--job", required=True, help="job id")
    evaluate.add_argument("--json", action="store_true", help="print the recorded event as JSON")
    evaluate.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a metric regressed since the previous evaluation of the set",
    )
    evaluate.set_defaults(run=_eval)

    golden = sub.add_parser("golden", help="write a synthetic golden set (rooms + ground truth)")
    golden.add_argument("--scenes", type=int, default=200)
    golden.add_argument("--seed", type=int, default=0)
    golden.add_argument("--out", type=Path, default=Path(".modomo/golden"))
    golden.set_defaults(run=_golden)


@asynccontextmanager
async def _clients(settings: Settings) -> AsyncIterator[tuple[asyncpg.Connection[Any], Redis, Any]]:
    from modomo.projections.db import connect as connect_db
    from modomo.storage import Storage
    from modomo.streams.connection import connect

    conn = await connect_db(settings)
    redis = connect(settings)
    try:
        async with Storage.open(settings) as storage:
            yield conn, redis, storage
    finally:
        await redis.aclose()
        await conn.close()


def _fail(message: str, code: int = 1) -> int:
    print(f"modomo: {message}", file=sys.stderr)
    return code


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    from modomo.export.pack import ExportError
    from modomo.export.run import export_dataset
    from modomo.export.source import PositionError

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\rpacked {done}/{total} scenes", end="", file=sys.stderr, flush=True)

    async with _clients(settings) as (conn, redis, storage):
        try:
            position, built = await export_dataset(
                conn,
                redis,
                Keys(settings.redis_prefix).events,
                storage,
                dataset_id=args.dataset,
                fmt=args.format,
                as_of=args.as_of,
                reviewed_only=args.reviewed_only,
                progress=progress,
            )
        except PositionError as exc:
            return _fail(str(exc), 2 if str(exc).startswith("--as-of takes") else 1)
        except ExportError as exc:
            return _fail(str(exc))
    if tty:
        print(file=sys.stderr)
    out = Path(args.out or f"{args.dataset}-{args.format}-{position}.zip")
    await asyncio.to_thread(out.write_bytes, built.data)
    print(
        f"wrote {out}: {built.scenes} scenes, {built.objects} objects, log position {position}, "
        f"sha256 {built.sha256}"
    )
    return 0


async def _exporter(args: argparse.Namespace, settings: Settings) -> int:
    from modomo.export.worker import run_exporter

    return await run_exporter(settings)


async def evaluate_and_record(
    settings: Settings, golden: Any, job_id: str, by: str
) -> EvaluationRecorded:
    """Score ``job_id`` against the golden set at ``golden`` (a reviewed export or one
    from ``modomo golden``) and append the evaluation to the log.

    Raises:
        EvalError: the golden set is unreadable (see its message), or the job cannot be
            scored against it.
    """
    from modomo.evaluate.run import evaluate, load_golden
    from modomo.streams.log import EventLog

    loaded = await asyncio.to_thread(load_golden, golden)
    keys = Keys(settings.redis_prefix)
    async with _clients(settings) as (conn, redis, storage):
        event = await evaluate(conn, redis, keys.events, storage, loaded, job_id, by)
        await EventLog(redis, keys).append([event])
    return event


async def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from modomo.evaluate.report import render
    from modomo.evaluate.run import EvalError, GoldenError

    try:
        event = await evaluate_and_record(settings, args.golden, args.job, "cli")
    except GoldenError as exc:
        return _fail(str(exc), 2)
    except EvalError as exc:
        return _fail(str(exc))
    print(msgspec.json.encode(event).decode() if args.json else render(event))
    return 1 if args.fail_on_regression and event.regressions else 0


async def _golden(args: argparse.Namespace, settings: Settings) -> int:
    from modomo.synthetic.golden import write_golden

    if not 1 <= args.scenes <= 10_000:
        return _fail("--scenes takes a number from 1 to 10000", 2)
    path = await asyncio.to_thread(write_golden, args.out, args.scenes, seed=args.seed)
    print(f"wrote {args.scenes} rooms under {args.out / 'images'} and their truth in {path}")
    return 0
