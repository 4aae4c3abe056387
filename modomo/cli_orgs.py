"""Organisation subcommands: ``org quota``, and the org side of ``apikey``.

Kept apart from :mod:`modomo.cli`, which registers them. An API key or quota changed here
is recorded on the log as well (``api_key_created``, ``api_key_revoked``,
``org_quota_set``), so ``GET /audit`` lists changes made from the command line too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from redis.exceptions import RedisError

from modomo.domain.events import EventBase, OrgQuotaSet
from modomo.domain.orgs import DEFAULT_ORG, valid_org
from modomo.projections.db import connect as connect_db
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog

OPERATOR = "cli"
"""Who the audit trail names for a change made from the command line."""


def org_argument(value: str) -> str:
    """argparse type: an organisation id, or a usage error (exit 2) saying what one is."""
    if not valid_org(value):
        raise argparse.ArgumentTypeError(
            f"{value[:80]!r} is not an organisation id: lower-case letters, digits, _ and -, "
            "at most 63, starting with a letter or digit"
        )
    return value


def add_commands(sub: Any) -> None:
    """Register ``org`` on ``modomo``'s subparsers."""
    org = sub.add_parser("org", help="organisations: quotas")
    org_sub = org.add_subparsers(dest="org_command", required=True)
    quota = org_sub.add_parser(
        "quota", help="set an organisation's scenes-per-day quota (0: no limit)"
    )
    quota.add_argument("--org", type=org_argument, default=DEFAULT_ORG)
    quota.add_argument("--scenes-per-day", type=int, required=True)
    quota.set_defaults(run=_quota)


async def record(settings: Settings, event: EventBase) -> bool:
    """Append ``event`` to the log; False (with a warning) when Redis cannot be reached:
    the change itself is made, only its audit entry is missing."""
    redis = connect(settings)
    try:
        await EventLog(redis, Keys(settings.redis_prefix)).append([event])
        return True
    except (RedisError, OSError) as exc:
        print(
            f"modomo: warning: the change was made but not recorded on the log: {exc}",
            file=sys.stderr,
        )
        return False
    finally:
        await redis.aclose()


async def _quota(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 <= args.scenes_per_day <= 100_000_000:
        print("modomo: --scenes-per-day must be from 0 (no limit) to 100000000", file=sys.stderr)
        return 2
    conn = await connect_db(settings)
    try:
        await conn.execute(
            "INSERT INTO org_quotas (org, scenes_per_day, updated_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (org) DO UPDATE SET scenes_per_day = EXCLUDED.scenes_per_day, "
            "updated_by = EXCLUDED.updated_by, updated_at = now()",
            args.org,
            args.scenes_per_day,
            OPERATOR,
        )
    finally:
        await conn.close()
    await record(
        settings, OrgQuotaSet(org=args.org, scenes_per_day=args.scenes_per_day, set_by=OPERATOR)
    )
    limit = args.scenes_per_day or "no limit"
    print(f"organisation {args.org}: {limit} scenes per day")
    return 0
