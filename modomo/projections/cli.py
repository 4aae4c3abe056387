"""The read side's commands: ``migrate``, ``project``, ``projections status|parked``,
``replay`` and ``trim``. Registered on the ``modomo`` command by :func:`register`.

Every connection here is a pooled one (:func:`modomo.projections.db.connect` with
``pooled=True``), so each command also works through a transaction-mode pooler.
Exit codes as for every ``modomo`` command: 0 done, 1 the operation failed (a sentence
says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.projections import db, http, parking
from modomo.projections.migrate import MigrationError, migrate
from modomo.projections.monitor import Monitor
from modomo.projections.registry import PROJECTORS, READ_MODEL_PROJECTORS, select
from modomo.projections.replay import ReplayError, replay
from modomo.projections.runner import ProjectorRunner
from modomo.projections.status import statuses, trim_log
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
Sub = Any  # argparse's _SubParsersAction is private


def register(sub: Sub) -> None:
    """Add the read side's subcommands to the ``modomo`` parser."""
    sub.add_parser("migrate", help="apply pending SQL migrations").set_defaults(run=_migrate)

    project = sub.add_parser("project", help="run projectors (all by default) until stopped")
    project.add_argument("names", nargs="*", help=f"projectors: {', '.join(PROJECTORS)}")
    project.set_defaults(run=_project)

    projections = sub.add_parser("projections", help="projector state and parked events")
    projections_sub = projections.add_subparsers(dest="projections_command", required=True)
    status = projections_sub.add_parser("status", help="position, lag and parked per projector")
    status.set_defaults(run=_status)
    parked = projections_sub.add_parser("parked", help="events a projector could not apply")
    parked_sub = parked.add_subparsers(dest="parked_command", required=True)
    listing = parked_sub.add_parser("list", help="parked events, oldest first")
    listing.add_argument("--projector", choices=READ_MODEL_PROJECTORS)
    listing.add_argument("--all", action="store_true", help="resolved ones too")
    listing.add_argument("--count", type=int, default=100, help="at most this many")
    listing.set_defaults(run=_parked_list)
    for action, helptext in (
        ("retry", "apply parked events again after a fix"),
        ("skip", "mark parked events resolved without applying them"),
    ):
        cmd = parked_sub.add_parser(action, help=helptext)
        cmd.add_argument("projector", choices=READ_MODEL_PROJECTORS)
        which = cmd.add_mutually_exclusive_group(required=True)
        which.add_argument("entry_ids", nargs="*", default=[], metavar="ENTRY_ID")
        which.add_argument("--all", action="store_true", help="every unresolved one")
        cmd.set_defaults(run=_parked_retry if action == "retry" else _parked_skip)

    replay_cmd = sub.add_parser("replay", help="rebuild read models from the log (blue/green)")
    replay_cmd.add_argument(
        "names",
        nargs="*",
        help=f"projectors to rebuild (default all: {', '.join(READ_MODEL_PROJECTORS)})",
    )
    replay_cmd.add_argument(
        "--from-redis", action="store_true", help="read the Redis stream instead of event_log"
    )
    replay_cmd.add_argument(
        "--until",
        help="an entry id (ms-seq) or an ISO time: the read "
        "models as they stood then, into their own schema",
    )
    replay_cmd.add_argument("--into", help="schema to build into (kept, not swapped)")
    replay_cmd.add_argument(
        "--dry-run", action="store_true", help="report what would change, keep nothing"
    )
    replay_cmd.set_defaults(run=_replay)

    sub.add_parser(
        "trim", help="trim the Redis log below every projector's checkpoint (it stays in event_log)"
    ).set_defaults(run=_trim)


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    redis = connect(settings)
    try:
        yield redis
    finally:
        await redis.aclose()


@asynccontextmanager
async def _db(settings: Settings) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await db.connect(settings, pooled=True)
    try:
        yield conn
    finally:
        await conn.close()


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as conn:
        try:
            applied = await migrate(conn, settings.db_schema, settings.db_log_schema)
        except MigrationError as exc:
            print(f"modomo: migration refused: {exc}", file=sys.stderr)
            return 1
    for name in applied:
        print(f"applied {name}")
    print("up to date" if not applied else f"{len(applied)} migration(s) applied")
    return 0


async def _project(args: argparse.Namespace, settings: Settings) -> int:
    try:
        projectors = select(args.names)
    except KeyError as exc:
        print(f"modomo: {exc.args[0]}", file=sys.stderr)
        return 2
    async with _redis(settings) as redis:
        runners = [ProjectorRunner(settings, redis, p) for p in projectors]
        monitor = Monitor(settings, redis, runners)
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            monitor.stop()
            for runner in runners:
                runner.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        server = None
        if settings.metrics_port:

            async def health() -> tuple[int, dict[str, Any]]:
                await monitor.refresh(trim=False)
                return monitor.health()

            server = await http.serve(
                health,
                settings.metrics_host,
                settings.metrics_port,
                metrics_token=settings.metrics_token,
            )
        try:
            await asyncio.gather(monitor.run(), *(r.run() for r in runners))
        finally:
            if server is not None:
                server.close()
    return 0


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as conn, _redis(settings) as redis:
        rows = await statuses(conn, redis, Keys(settings.redis_prefix).events)
    print(f"{'projector':<10} {'position':<18} {'applied':>9} {'lag':>8} {'parked':>7}")
    for row in rows:
        lag = "?" if row.lag is None else str(row.lag)
        print(f"{row.name:<10} {row.position:<18} {row.events_seen:>9} {lag:>8} {row.parked:>7}")
    return 0


async def _parked_list(args: argparse.Namespace, settings: Settings) -> int:
    if args.count < 1:
        print("modomo: --count takes a positive number", file=sys.stderr)
        return 2
    async with _db(settings) as conn:
        found = await parking.listing(conn, args.projector, args.all, args.count)
    if not found:
        print("no parked events" if args.all else "no unresolved parked events")
        return 0
    print(f"{'projector':<9} {'entry':<17} {'type':<20} {'tries':>5}  state     reason")
    for p in found:
        state = p.resolution or "open"
        print(
            f"{p.projector:<9} {p.entry_id:<17} {p.event_type:<20} {p.attempts:>5}  "
            f"{state:<8}  {p.reason[:120]}"
        )
    return 0


async def _chosen(conn: asyncpg.Connection[Any], args: argparse.Namespace) -> list[str]:
    if not args.all:
        return list(args.entry_ids)
    found = await parking.listing(conn, args.projector, limit=1_000_000)
    return [p.entry_id for p in found]


async def _parked_retry(args: argparse.Namespace, settings: Settings) -> int:
    [projector] = select([args.projector])
    failed = 0
    async with _db(settings) as conn:
        for entry_id in await _chosen(conn, args):
            try:
                refused = await parking.retry(conn, projector, entry_id)
            except parking.ParkedError as exc:
                print(f"modomo: {exc}", file=sys.stderr)
                failed += 1
                continue
            if refused is not None:
                print(f"modomo: {entry_id} is still refused: {refused}", file=sys.stderr)
                failed += 1
            else:
                print(f"{entry_id} applied by {projector.name}")
    return 1 if failed else 0


async def _parked_skip(args: argparse.Namespace, settings: Settings) -> int:
    failed = 0
    async with _db(settings) as conn:
        for entry_id in await _chosen(conn, args):
            try:
                await parking.skip(conn, args.projector, entry_id)
            except parking.ParkedError as exc:
                print(f"modomo: {exc}", file=sys.stderr)
                failed += 1
            else:
                print(f"{entry_id} skipped for {args.projector}")
    return 1 if failed else 0


def _until(text: str | None) -> tuple[str | None, datetime | None]:
    """``--until`` as an entry id or a time; ValueError with a sentence otherwise."""
    if not text:
        return None, None
    if re.fullmatch(r"\d+-\d+", text):
        return text, None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--until takes an entry id (ms-seq) or an ISO time, got {text!r}"
        ) from None
    return None, at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    try:
        projectors = select(args.names or list(READ_MODEL_PROJECTORS))
        until_id, until_at = _until(args.until)
    except (KeyError, ValueError) as exc:
        print(f"modomo: {exc.args[0]}", file=sys.stderr)
        return 2
    tty = sys.stderr.isatty()

    def progress(done: int) -> None:
        if tty:
            print(f"\rreplayed {done:,} events", end="", file=sys.stderr, flush=True)

    async with _redis(settings) as redis:
        try:
            result = await replay(
                settings,
                projectors,
                redis=redis if args.from_redis else None,
                until_id=until_id,
                until_at=until_at,
                into=args.into,
                dry_run=args.dry_run,
                progress=progress,
            )
        except ReplayError as exc:
            print(f"modomo: {exc}", file=sys.stderr)
            return 2
    if tty:
        print(file=sys.stderr)
    print(
        f"replayed {result.events} events through {', '.join(result.projectors)} "
        f"(last entry {result.last_position}); {result.parked} parked"
    )
    if args.dry_run:
        for table, (gone, new) in result.changes.items():
            print(f"  {table}: {gone} row(s) would go, {new} would come")
    elif result.swapped:
        print(f"swapped the rebuilt tables into schema {settings.db_schema}")
    else:
        print(f"kept the result in schema {result.schema}")
    return 0


async def _trim(args: argparse.Namespace, settings: Settings) -> int:
    async with _db(settings) as conn, _redis(settings) as redis:
        removed = await trim_log(conn, redis, Keys(settings.redis_prefix).events)
    print(f"trimmed {removed} log entries already applied by every projector")
    return 0
