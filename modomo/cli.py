"""``modomo``: one command line with subcommands, kept thin.

Exit codes: 0 done, 1 the operation failed (the message says why), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from modomo.api.auth import ROLES, create_api_key
from modomo.cli_orgs import OPERATOR, org_argument, record
from modomo.cli_orgs import add_commands as add_org_commands
from modomo.cli_products import add_commands as add_product_commands
from modomo.domain.events import ApiKeyCreated, ApiKeyRevoked
from modomo.domain.orgs import DEFAULT_ORG
from modomo.logs import configure_logging
from modomo.projections.cli import register as register_read_side
from modomo.projections.db import connect as connect_db
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

    register_read_side(sub)

    api = sub.add_parser("api", help="serve the REST and SSE API (MODOMO_API_HOST:PORT)")
    api.add_argument(
        "--workers", type=_positive, default=1, help="processes sharing the port (default 1)"
    )
    api.set_defaults(serve=_api)

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
    create_key.add_argument(
        "--org", type=org_argument, default=DEFAULT_ORG, help="the organisation it belongs to"
    )
    create_key.set_defaults(run=_apikey_create)
    revoke_key = apikey_sub.add_parser("revoke", help="revoke a key by its id")
    revoke_key.add_argument("key_id")
    revoke_key.set_defaults(run=_apikey_revoke)

    add_product_commands(sub)
    add_org_commands(sub)
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
        dead = DeadLetters(redis, Keys(settings.redis_prefix), settings.attempts_ttl_s)
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


def _api(args: argparse.Namespace, settings: Settings) -> int:
    # Not a coroutine: uvicorn runs the event loop (uvloop), or supervises workers.
    from modomo.api.app import serve

    serve(settings, workers=args.workers)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the model stack is an optional extra that other commands never need.
    from modomo.gpu.worker import run_worker

    return await run_worker(settings, storage_dir=args.storage_dir)


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from modomo.demo.run import demo, until_signalled
    from modomo.demo.services import ServiceError
    from modomo.demo.supervisor import CrashLoop
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
        return await until_signalled(
            demo(settings, args.scenes, Path(args.state), stay, golden), stopped=1
        )
    except (ServiceError, CrashLoop, EvalError) as exc:
        print(f"modomo: {exc}", file=sys.stderr)
        return 1


async def _up(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from modomo.demo.run import until_signalled, up
    from modomo.demo.services import ServiceError
    from modomo.demo.supervisor import CrashLoop

    try:
        return await until_signalled(up(settings, Path(args.state)), stopped=0)
    except (ServiceError, CrashLoop) as exc:
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
        key = await create_api_key(conn, args.role, args.name, args.org, OPERATOR)
    finally:
        await conn.close()
    key_id = key.split("_")[1]
    event = ApiKeyCreated(
        org=args.org, key_id=key_id, role=args.role, name=args.name, created_by=OPERATOR
    )
    await record(settings, event)
    print(key)
    print("Store it now: only a hash is kept, it cannot be shown again.", file=sys.stderr)
    return 0


async def _apikey_revoke(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect_db(settings)
    try:
        org = await conn.fetchval(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL "
            "RETURNING org",
            args.key_id,
        )
    finally:
        await conn.close()
    if org is None:
        print(f"modomo: no active API key with id {args.key_id}", file=sys.stderr)
        return 1
    await record(settings, ApiKeyRevoked(org=org, key_id=args.key_id, revoked_by=OPERATOR))
    print(f"revoked {args.key_id}")
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
    try:
        if hasattr(args, "serve"):
            code: int = args.serve(args, settings)
            return code
        run: Command = args.run
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
