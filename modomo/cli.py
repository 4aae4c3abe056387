"""``modomo``: one command line with subcommands, kept thin.

Exit codes: 0 done, 1 the operation failed (the message says why), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from modomo.api.auth import ROLES, create_api_key
from modomo.cli_products import add_commands as add_product_commands
from modomo.logs import configure_logging
from modomo.projections.db import connect as connect_db
from modomo.projections.migrate import MigrationError, migrate
from modomo.projections.registry import PROJECTORS, READ_MODEL_PROJECTORS, select
from modomo.projections.replay import ReplayError, replay
from modomo.projections.runner import ProjectorRunner
from modomo.projections.status import statuses, trim_log
from modomo.settings import Settings, SettingsError
from modomo.streams.connection import connect
from modomo.streams.dead import DeadLetters, DeadRetryError
from modomo.streams.keys import Keys
from modomo.streams.queue import TaskQueue

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modomo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    dead = sub.add_parser("dead", help="inspect and retry dead-lettered scene tasks")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    listing = dead_sub.add_parser("list", help="dead tasks: attempts, last error, age")
    listing.add_argument("--count", type=int, default=100, help="at most this many (oldest)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=_dead_list)
    retry = dead_sub.add_parser("retry", help="re-enqueue dead tasks after a fix")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", default=[], help="dead stream entry ids")
    which.add_argument("--all", action="store_true", help="every retryable dead task")
    retry.set_defaults(run=_dead_retry)

    queue = sub.add_parser("queue", help="the scene task queue")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True)
    stats = queue_sub.add_parser("stats", help="length, pending and dead counts")
    stats.set_defaults(run=_queue_stats)
    trim = queue_sub.add_parser("trim", help="drop entries every group has read and acked")
    trim.set_defaults(run=_queue_trim)

    migrate = sub.add_parser("migrate", help="apply pending SQL migrations")
    migrate.set_defaults(run=_migrate)

    project = sub.add_parser("project", help="run projectors (all by default) until stopped")
    project.add_argument("names", nargs="*", help=f"projectors: {', '.join(PROJECTORS)}")
    project.set_defaults(run=_project)

    projections = sub.add_parser("projections", help="projector state")
    projections_sub = projections.add_subparsers(dest="projections_command", required=True)
    status = projections_sub.add_parser("status", help="position, lag and parked per projector")
    status.set_defaults(run=_projections_status)

    replay_cmd = sub.add_parser("replay", help="rebuild read models from the log (blue/green)")
    replay_cmd.add_argument(
        "names",
        nargs="*",
        help=f"projectors to rebuild (default all: {', '.join(READ_MODEL_PROJECTORS)})",
    )
    replay_cmd.add_argument(
        "--from-redis",
        action="store_true",
        help="read the Redis stream instead of the event_log archive",
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

    api = sub.add_parser("api", help="serve the REST and SSE API (MODOMO_API_HOST:PORT)")
    api.set_defaults(run=_api)

    worker = sub.add_parser(
        "worker", help="run the GPU pipeline worker (models from MODOMO_MODEL_PROFILE)"
    )
    worker.add_argument(
        "--storage-dir",
        help="read originals and write artifacts in this folder instead of the S3 bucket",
    )
    worker.set_defaults(run=_worker)

    demo_cmd = sub.add_parser(
        "demo",
        help="the whole product on this machine: services, synthetic photos, a live job, a summary",
    )
    demo_cmd.add_argument("--scenes", type=int, default=20, help="how many photos")
    demo_cmd.add_argument("--state", default=".modomo", help="folder for data and logs")
    demo_cmd.add_argument(
        "--golden",
        help="a folder from `modomo golden`: its images are the photos, then the job is scored",
    )
    after = demo_cmd.add_mutually_exclusive_group()
    after.add_argument(
        "--exit",
        action="store_true",
        help="stop everything after the summary (the default without a terminal or with CI set)",
    )
    after.add_argument(
        "--stay", action="store_true", help="keep everything running after the summary"
    )
    demo_cmd.set_defaults(run=_demo)
    up_cmd = sub.add_parser("up", help="run S3, the API, projectors and a GPU worker until Ctrl-C")
    up_cmd.add_argument("--state", default=".modomo", help="folder for data and logs")
    up_cmd.set_defaults(run=_up)

    models = sub.add_parser("models", help="the GPU worker's model weights")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    pull = models_sub.add_parser(
        "pull", help="download the real weights into MODOMO_MODEL_DIR (needs internet)"
    )
    pull.set_defaults(run=_models_pull)

    apikey = sub.add_parser("apikey", help="API keys for integrations")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create_key = apikey_sub.add_parser("create", help="create a key; it is printed once")
    create_key.add_argument("--role", choices=ROLES, required=True)
    create_key.add_argument("--name", default="", help="what the key is for")
    create_key.set_defaults(run=_apikey_create)
    revoke_key = apikey_sub.add_parser("revoke", help="revoke a key by its id")
    revoke_key.add_argument("key_id")
    revoke_key.set_defaults(run=_apikey_revoke)

    log_trim = sub.add_parser(
        "trim", help="trim the Redis log below every projector's checkpoint (it stays in event_log)"
    )
    log_trim.set_defaults(run=_trim_log)
    add_product_commands(sub)
    return parser


@asynccontextmanager
async def _redis(settings: Settings) -> AsyncIterator[Redis]:
    redis = connect(settings)
    try:
        yield redis
    finally:
        await redis.aclose()


async def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    async with _redis(settings) as redis:
        dead = await DeadLetters(redis, Keys(settings.redis_prefix)).oldest(args.count)
    now = datetime.now(UTC)
    if args.json:
        for item in dead:
            row = {
                "id": item.id,
                "job_id": item.job_id,
                "scene_id": item.scene_id,
                "reason": item.reason,
                "attempts": item.attempts,
                "error": item.error,
                "age_s": round(item.age_s(now), 1),
                "errors": item.errors,
            }
            sys.stdout.write(msgspec.json.encode(row).decode() + "\n")
        return 0
    if not dead:
        print("the dead stream is empty")
        return 0
    print(f"{'id':<17} {'scene':<36} {'attempts':>8} {'age':>8}  last error")
    for item in dead:
        print(
            f"{item.id:<17} {item.scene_id or '-':<36} {item.attempts:>8} "
            f"{_age(item.age_s(now)):>8}  {item.error[:100]}"
        )
    return 0


async def _dead_retry(args: argparse.Namespace, settings: Settings) -> int:
    failed = 0
    async with _redis(settings) as redis:
        dead = DeadLetters(redis, Keys(settings.redis_prefix))
        if args.all:
            queued, skipped = await dead.retry_all()
            for reason in skipped:
                print(f"skipped: {reason}", file=sys.stderr)
            print(f"re-enqueued {len(queued)} task(s), skipped {len(skipped)}")
            return 1 if skipped else 0
        for entry_id in args.ids:
            try:
                new_id = await dead.retry(entry_id)
            except DeadRetryError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
            else:
                print(f"{entry_id} re-enqueued as {new_id}")
    return 1 if failed else 0


async def _queue_stats(args: argparse.Namespace, settings: Settings) -> int:
    async with _redis(settings) as redis:
        stats = await TaskQueue(redis, Keys(settings.redis_prefix)).stats()
    print(f"queue length {stats.length}, pending {stats.pending}, dead {stats.dead}")
    for reason, count in sorted(stats.dead_by_reason.items()):
        print(f"  dead-lettered ({reason}): {count}")
    return 0


async def _queue_trim(args: argparse.Namespace, settings: Settings) -> int:
    async with _redis(settings) as redis:
        removed = await TaskQueue(redis, Keys(settings.redis_prefix)).trim()
    print(f"trimmed {removed} acknowledged entries")
    return 0


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    conn = await asyncpg.connect(
        settings.database_url, statement_cache_size=settings.db_statement_cache_size
    )
    try:
        applied = await migrate(conn, settings.db_schema, settings.db_log_schema)
    except MigrationError as exc:
        print(f"modomo: migration refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
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
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            for runner in runners:
                runner.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        if settings.metrics_port:
            start_http_server(settings.metrics_port)
        await asyncio.gather(*(r.run() for r in runners))
    return 0


@asynccontextmanager
async def _both(settings: Settings) -> AsyncIterator[tuple[asyncpg.Connection[Any], Redis]]:
    conn = await connect_db(settings)
    try:
        async with _redis(settings) as redis:
            yield conn, redis
    finally:
        await conn.close()


async def _projections_status(args: argparse.Namespace, settings: Settings) -> int:
    async with _both(settings) as (conn, redis):
        rows = await statuses(conn, redis, Keys(settings.redis_prefix).events)
    print(f"{'projector':<10} {'position':<18} {'applied':>9} {'lag':>8} {'parked':>7}")
    for row in rows:
        lag = "?" if row.lag is None else str(row.lag)
        print(f"{row.name:<10} {row.position:<18} {row.events_seen:>9} {lag:>8} {row.parked:>7}")
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    try:
        projectors = select(args.names or list(READ_MODEL_PROJECTORS))
    except KeyError as exc:
        print(f"modomo: {exc.args[0]}", file=sys.stderr)
        return 2
    until_id = until_at = None
    if args.until:
        if re.fullmatch(r"\d+-\d+", args.until):
            until_id = args.until
        else:
            try:
                until_at = datetime.fromisoformat(args.until)
            except ValueError:
                print(
                    f"modomo: --until takes an entry id (ms-seq) or an ISO time, got "
                    f"{args.until!r}",
                    file=sys.stderr,
                )
                return 2
            if until_at.tzinfo is None:
                until_at = until_at.replace(tzinfo=UTC)
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
        f"(last entry {result.last_position})"
    )
    if args.dry_run:
        for table, (gone, new) in result.changes.items():
            print(f"  {table}: {gone} row(s) would go, {new} would come")
    elif result.swapped:
        print(f"swapped the rebuilt tables into schema {settings.db_schema}")
    else:
        print(f"kept the result in schema {result.schema}")
    return 0


async def _api(args: argparse.Namespace, settings: Settings) -> int:
    from modomo.api.app import serve

    await serve(settings)
    return 0


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the model stack is an optional extra that other commands never need.
    from modomo.gpu.worker import run_worker

    return await run_worker(settings, storage_dir=args.storage_dir)


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from modomo.demo.run import demo
    from modomo.demo.services import ServiceError
    from modomo.evaluate.run import EvalError

    if not 1 <= args.scenes <= 500:
        print("modomo: --scenes takes a number from 1 to 500", file=sys.stderr)
        return 2
    interactive = sys.stdin.isatty() and not os.environ.get("CI")
    stay = args.stay or (interactive and not args.exit)
    if not stay and not args.exit:
        print(
            "modomo: no terminal (or CI is set): stopping after the summary; --stay keeps "
            "everything running",
            file=sys.stderr,
        )
    try:
        golden = Path(args.golden) if args.golden else None
        return await demo(settings, args.scenes, Path(args.state), stay, golden)
    except (ServiceError, EvalError) as exc:
        print(f"modomo: {exc}", file=sys.stderr)
        return 1


async def _up(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from modomo.demo.run import up
    from modomo.demo.services import ServiceError

    try:
        return await up(settings, Path(args.state))
    except ServiceError as exc:
        print(f"modomo: {exc}", file=sys.stderr)
        return 1


async def _models_pull(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from modomo.gpu.pull import pull

    try:
        manifest = await asyncio.to_thread(pull, Path(settings.model_dir))
    except Exception as exc:
        # Each hub library has its own network errors; any of them means the same here.
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        print(
            f"modomo: could not fetch the weights ({first}); this needs a machine that "
            "reaches the model hubs",
            file=sys.stderr,
        )
        return 1
    for role in ("clip", "yolo", "sam2", "grounding_dino", "depth", "captioner"):
        spec = manifest.spec(role)
        print(f"{role:<15} {spec.id:<45} {spec.licence}")
    print(f"weights in {settings.model_dir}")
    return 0


async def _apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect_db(settings)
    try:
        key = await create_api_key(conn, args.role, args.name)
    finally:
        await conn.close()
    print(key)
    print("Store it now: only a hash is kept, it cannot be shown again.", file=sys.stderr)
    return 0


async def _apikey_revoke(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect_db(settings)
    try:
        done = await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL",
            args.key_id,
        )
    finally:
        await conn.close()
    if done.endswith(" 0"):
        print(f"modomo: no active API key with id {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


async def _trim_log(args: argparse.Namespace, settings: Settings) -> int:
    async with _both(settings) as (conn, redis):
        removed = await trim_log(conn, redis, Keys(settings.redis_prefix).events)
    print(f"trimmed {removed} log entries already applied by every projector")
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modomo`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"modomo: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    run: Command = args.run
    try:
        return asyncio.run(run(args, settings))
    except RedisConnectionError as exc:
        print(
            f"modomo: cannot reach Redis at {settings.redis_url_redacted}: {exc}", file=sys.stderr
        )
        return 1
    except AuthenticationError as exc:
        print(
            f"modomo: Redis at {settings.redis_url_redacted} refused the credentials: {exc}",
            file=sys.stderr,
        )
        return 1
    except RedisError as exc:
        print(f"modomo: Redis refused the operation: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"modomo: database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
