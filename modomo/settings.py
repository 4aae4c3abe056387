"""One typed settings object, read from the environment once at start-up.

Every field maps to a ``MODOMO_<FIELD>`` variable (upper case). Defaults suit a developer
machine with Redis and PostgreSQL on loopback. A malformed value stops start-up with a
:class:`SettingsError` whose message names the variable, so a typo never turns into a
silently different default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_type_hints
from urllib.parse import parse_qs, urlsplit

import msgspec

LogFormat = Literal["auto", "json", "console"]
DEV_JWT_SECRET = "dev-only-change-me-this-is-not-a-secret"
"""The development default: 32+ bytes like any HS256 key (RFC 7518 §3.2), so PyJWT never
warns about its length; refused when the API listens beyond loopback."""
MIN_JWT_SECRET_CHARS = 32
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEV_S3_SECRET = "modomo-secret"
"""The development bucket's secret (the local SeaweedFS); refused beyond loopback."""
PRESIGN_TTL_RANGE_S = (300, 900)
"""The specification's lifetime of presigned URLs: 5 to 15 minutes."""
ModelProfile = Literal["auto", "real", "tiny", "full-random"]
WorkerMode = Literal["sequential", "optimized"]
SSE_BLOCK_MS = 5_000
"""XREAD BLOCK of the API's job-stream readers; the Redis socket timeout must outlast it."""
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,40}")


class SettingsError(ValueError):
    """A ``MODOMO_*`` variable holds a value that cannot be used."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a Modomo process can be configured with."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding the streams; ``rediss://`` for TLS, ``redis://:password@host`` for auth."""
    redis_max_connections: int = 64
    """Most Redis connections one process opens; callers beyond it wait their turn."""
    redis_prefix: str = "modomo"
    """Key namespace: every key is ``<prefix>:...``; tests use their own prefix."""
    redis_socket_timeout_s: float = 15.0
    """Longest wait for one Redis reply; must outlast every blocking read (``block_ms`` and
    the SSE hub's 5 s XREAD BLOCK), or an idle blocking read would count as an outage."""
    redis_connect_timeout_s: float = 5.0
    """Longest wait for a new Redis connection (a down server is noticed this fast)."""
    redis_health_check_s: int = 15
    """A pooled connection idle this long is PINGed before reuse (dead ones are replaced)."""
    redis_retry_max_ms: int = 5_000
    """Cap of the backoff between reconnection attempts while Redis is unreachable."""
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    """PostgreSQL for the read models (``sslmode=require`` is honoured from the URL)."""

    db_schema: str = "modomo"
    """Schema of the read models (replay swaps tables into it)."""
    db_log_schema: str = "modomo_log"
    """Schema of the event archive and the migration records (never swapped)."""
    db_api_role: str = ""
    """A database role the API switches to for its reads (``SET LOCAL ROLE``), not the
    tables' owner and without BYPASSRLS, so the read models' row-level security confines
    every query to the caller's organisation (README: Organisations). Empty: the API reads
    as the connecting user, with only its own queries' organisation filters."""
    db_statement_cache_size: int = 100
    """asyncpg prepared-statement cache; 0 behind a transaction-mode pooler (Supabase)."""
    db_connect_timeout_s: float = 10.0
    """How long opening a PostgreSQL connection may take before it counts as failed."""
    db_command_timeout_s: float = 60.0
    """How long one SQL statement may run (raise it for migrations on very large tables)."""
    projector_batch: int = 5000
    """Most events a projector applies per transaction (fewer when it is caught up)."""
    projector_lease_ms: int = 10_000
    """A projector instance's lease on its projector lasts this long unless renewed; a
    standby takes over at most this long after the active instance died."""
    projector_trim_interval_s: float = 60.0
    """How often the projector process trims the Redis log below every checkpoint (0: never)."""
    projector_trim_margin: int = 10_000
    """Entries kept in the Redis log below the slowest projector's checkpoint."""

    s3_endpoint_url: str = "http://127.0.0.1:8333"
    """S3-compatible endpoint (Cloudflare R2 in production)."""
    s3_region: str = "auto"
    """Region name; R2 expects ``auto``."""
    s3_bucket: str = "modomo-datasets"
    """The one bucket holding originals, masks, depth maps and thumbnails."""
    s3_access_key_id: str = "modomo"
    """Access key id for the bucket."""
    s3_secret_access_key: str = DEV_S3_SECRET
    """Secret for the access key; the built-in one is refused beyond loopback."""
    presign_ttl_s: int = 600
    """Lifetime of presigned URLs, 300 to 900 (the specification's 5 to 15 minutes)."""

    api_host: str = "127.0.0.1"
    """Address the API listens on (0.0.0.0 in a container)."""
    api_port: int = 8080
    """Port of the API (the specification's 8080)."""
    jwt_secret: str = DEV_JWT_SECRET
    """HS256 secret for bearer tokens; set a long random value in production."""
    cors_origins: tuple[str, ...] = ("http://localhost:5173", "http://127.0.0.1:5173")
    """Front-end origins allowed by CORS, comma-separated (the API's own origin, which serves
    the review app at ``/app``, needs no entry); also granted by the bucket's CORS rules."""
    metrics_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Networks (CIDR, comma-separated) whose clients may read ``/metrics`` without
    ``MODOMO_METRICS_TOKEN``; empty: none."""
    metrics_token: str = ""
    """Bearer token that opens ``/metrics`` (API, projectors, GPU workers) from anywhere;
    empty: only ``MODOMO_METRICS_NETWORKS`` may read the API's."""
    write_rate_limit: int = 300
    """Writes (POST, PUT, PATCH, DELETE) one API key or token subject may make per
    ``MODOMO_WRITE_RATE_WINDOW_S``, shared by every API process through Redis; 0: no limit."""
    write_rate_window_s: int = 60
    """The window in which ``MODOMO_WRITE_RATE_LIMIT`` is counted."""
    sse_ticket_ttl_s: int = 60
    """Lifetime of a job-scoped SSE ticket (``POST /jobs/:id/events/ticket``)."""
    web_dir: str = ""
    """Folder of the built review app served at ``/app``; empty: ``web/dist`` of the checkout."""
    max_upload_bytes: int = 25 * 1024 * 1024
    """Largest scene image accepted for upload and registration."""
    write_wait_ms: int = 2000
    """How long a write waits for its projection before answering 202 instead of 200."""
    scene_cache_size: int = 2000
    """Scenes whose JSON the API keeps per process, checked against the read model on
    every read (0 turns the cache off)."""

    max_attempts: int = 3
    """Deliveries of a scene task before it goes to the dead stream."""
    retry_backoff_ms: tuple[int, ...] = (15_000, 60_000)
    """Idle time before the 2nd, 3rd, ... delivery; the last value repeats."""
    heartbeat_ms: int = 5_000
    """How often a live task refreshes its claim and lock; must stay well under the backoff."""
    reclaim_interval_ms: int = 1_000
    """How often an idle worker looks for abandoned or failed tasks to claim."""
    block_ms: int = 1_000
    """XREADGROUP BLOCK: how long a read waits for new work before checking again."""
    lock_ttl_ms: int = 20_000
    """Expiry of ``<prefix>:locks:<scene_id>`` when its owner stops refreshing it."""
    attempts_ttl_s: int = 7 * 24 * 3600
    """How long the per-task error history is kept when a task is never finished."""
    job_retention_s: int = 24 * 3600
    """How long a finished job's stream and bookkeeping stay in Redis after ``job_done``
    (the Postgres archive keeps every event; an expired job's SSE is served from it)."""
    queue_trim_interval_s: float = 30.0
    """How often a worker trims queue entries that every group has read and acked."""
    task_timeout_s: float = 900.0
    """Deadline of one delivery of a scene task (download, every stage, the appends); past
    it the attempt fails as transient and the task is retried after its backoff."""
    stage_timeout_s: float = 300.0
    """Deadline of one pipeline stage; past it the attempt fails (transient). A model call
    still running on the GPU thread then makes the worker exit for a restart (exit 3)."""
    s3_timeout_s: float = 30.0
    """Connect and read timeout of one object-storage request (retried while storage is
    unreachable, within the task's deadline)."""
    shutdown_grace_s: float = 60.0
    """On SIGTERM, how long running tasks may take to finish before they are abandoned."""

    supervisor_max_restarts: int = 5
    """``modomo up``/``demo``: a child that exits more often than this within
    ``MODOMO_SUPERVISOR_WINDOW_S`` is crash-looping, and everything stops (exit 1)."""
    supervisor_window_s: float = 60.0
    """The window in which ``MODOMO_SUPERVISOR_MAX_RESTARTS`` is counted."""

    log_format: LogFormat = "auto"
    """``json`` lines, ``console`` for people, or ``auto``: console on a terminal, else JSON."""
    log_level: str = "info"
    """Lowest level logged."""
    metrics_port: int = 0
    """Port of the projector process's ``/metrics`` and ``/health``; 0 turns it off."""
    metrics_host: str = "127.0.0.1"
    """Address the projector process's ``/metrics`` listens on (0.0.0.0 for a scraper
    on another machine)."""

    model_profile: ModelProfile = "auto"
    """GPU worker models: ``real`` (pulled weights), ``tiny`` or ``full-random`` (random
    weights, small or full-size), ``auto`` (real when the model directory has them)."""
    model_dir: str = ".modomo/models"
    """Where ``modomo models pull`` puts the weights; random-weight profiles write beside."""
    model_seed: int = 0
    """Seed of the random weights of the ``tiny`` and ``full-random`` profiles."""
    device: str = "auto"
    """``cuda``, ``cuda:N``, ``cpu`` or ``auto`` (CUDA when present)."""
    torch_threads: int = 0
    """CPU threads torch uses; 0 means one per core."""
    worker_mode: WorkerMode = "sequential"
    """``sequential``: one scene at a time, one model call per stage; ``optimized``: several
    scenes in flight, batched through each model, decode and uploads overlapping."""
    worker_concurrency: int = 0
    """Scenes a GPU worker runs at once; 0 derives it from the mode and GPU memory."""
    worker_max_batch: int = 8
    """Most scenes batched into one model call in ``optimized`` mode."""
    worker_http_port: int = 8090
    """Port of the GPU worker's ``/health``, ``/warmup`` and ``/metrics``; 0 turns it off."""
    worker_http_host: str = "127.0.0.1"
    """Address those listen on; beyond loopback ``MODOMO_WORKER_TOKEN`` must be set."""
    worker_token: str = ""
    """Bearer token ``POST /warmup`` of the GPU worker needs (when set)."""
    worker_idle_exit_s: float = 900.0
    """A GPU worker exits cleanly after this long without a task (0: never), so a pod
    scales to zero."""
    style_threshold: float = 0.15
    """Lowest softmax share for a style to be kept beside the top one (multi-label)."""
    material_threshold: float = 0.15
    """Lowest softmax share for a material to be kept beside the top one (multi-label)."""
    detect_confidence: float = 0.25
    """Lowest YOLO confidence kept."""
    label_box_threshold: float = 0.3
    """Lowest GroundingDINO box score kept."""

    def __post_init__(self) -> None:
        for name in (
            "heartbeat_ms",
            "reclaim_interval_ms",
            "block_ms",
            "lock_ttl_ms",
            "attempts_ttl_s",
            "sse_ticket_ttl_s",
            "write_rate_window_s",
            "job_retention_s",
            "redis_health_check_s",
            "redis_retry_max_ms",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"MODOMO_{name.upper()}: must be positive")
        for name in (
            "redis_socket_timeout_s",
            "redis_connect_timeout_s",
            "queue_trim_interval_s",
            "task_timeout_s",
            "stage_timeout_s",
            "s3_timeout_s",
        ):
            if not 0 < getattr(self, name) < float("inf"):
                raise SettingsError(
                    f"MODOMO_{name.upper()}: must be a positive, finite number of seconds"
                )
        if self.stage_timeout_s > self.task_timeout_s:
            raise SettingsError(
                "MODOMO_STAGE_TIMEOUT_S: must not exceed MODOMO_TASK_TIMEOUT_S "
                f"({self.task_timeout_s} s), got {self.stage_timeout_s}"
            )
        longest_block_s = max(self.block_ms, SSE_BLOCK_MS) / 1000
        if self.redis_socket_timeout_s < longest_block_s + 1:
            raise SettingsError(
                "MODOMO_REDIS_SOCKET_TIMEOUT_S: must exceed the longest blocking read "
                f"({longest_block_s:g} s: MODOMO_BLOCK_MS or the SSE hub's) by a second or "
                f"more, got {self.redis_socket_timeout_s}"
            )
        for name in ("metrics_port", "worker_http_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingsError(
                    f"MODOMO_{name.upper()}: must be a port number (0 turns it off)"
                )
        for name in ("model_seed", "torch_threads", "worker_concurrency", "scene_cache_size"):
            if getattr(self, name) < 0:
                raise SettingsError(f"MODOMO_{name.upper()}: must not be negative")
        if self.worker_max_batch < 1:
            raise SettingsError("MODOMO_WORKER_MAX_BATCH: must be at least 1")
        if not 0 <= self.worker_idle_exit_s < float("inf"):
            raise SettingsError("MODOMO_WORKER_IDLE_EXIT_S: must be a finite number of seconds")
        for name in (
            "style_threshold",
            "material_threshold",
            "detect_confidence",
            "label_box_threshold",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise SettingsError(f"MODOMO_{name.upper()}: must be between 0 and 1")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise SettingsError(
                f"MODOMO_DEVICE: expected auto, cpu, cuda or cuda:N, got {self.device!r}"
            )
        if not 0 <= self.shutdown_grace_s < float("inf"):
            raise SettingsError("MODOMO_SHUTDOWN_GRACE_S: must be a finite number of seconds")
        low, high = PRESIGN_TTL_RANGE_S
        if not low <= self.presign_ttl_s <= high:
            raise SettingsError(
                f"MODOMO_PRESIGN_TTL_S: presigned URLs live {low} to {high} seconds (the "
                f"specification's 5 to 15 minutes), got {self.presign_ttl_s}"
            )
        if self.write_rate_limit < 0:
            raise SettingsError("MODOMO_WRITE_RATE_LIMIT: must not be negative (0: no limit)")
        for network in self.metrics_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(
                    f"MODOMO_METRICS_NETWORKS: {network!r} is not a network (CIDR, such as "
                    "10.0.0.0/8)"
                ) from None
        self._refuse_built_in_secrets()
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_CHARS:
            # HS256 wants a key at least as long as its hash (RFC 7518 §3.2); PyJWT warns below.
            raise SettingsError(
                f"MODOMO_JWT_SECRET: use at least {MIN_JWT_SECRET_CHARS} characters"
            )
        if self.max_attempts < 1:
            raise SettingsError("MODOMO_MAX_ATTEMPTS: must be at least 1")
        if not self.retry_backoff_ms or min(self.retry_backoff_ms) <= 0:
            raise SettingsError("MODOMO_RETRY_BACKOFF_MS: give one or more positive integers")
        # A live task is reclaimable once idle longer than the shortest backoff, so the
        # heartbeat must come at least twice inside that window or live work gets stolen.
        if self.heartbeat_ms * 2 > min(self.retry_backoff_ms):
            raise SettingsError(
                "MODOMO_HEARTBEAT_MS: must be at most half the shortest retry backoff "
                f"({min(self.retry_backoff_ms)} ms), got {self.heartbeat_ms}"
            )
        if self.lock_ttl_ms <= self.heartbeat_ms * 2:
            raise SettingsError("MODOMO_LOCK_TTL_MS: must be more than twice MODOMO_HEARTBEAT_MS")
        scheme = urlsplit(self.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(
                f"MODOMO_REDIS_URL: expected redis://, rediss:// or unix://, got {self.redis_url!r}"
            )
        if self.db_api_role and not _IDENTIFIER.fullmatch(self.db_api_role):
            raise SettingsError(
                "MODOMO_DB_API_ROLE: lower-case letters, digits and _ only, starting with a "
                f"letter, got {self.db_api_role!r}"
            )
        for name in ("db_schema", "db_log_schema"):
            if not _IDENTIFIER.fullmatch(getattr(self, name)):
                raise SettingsError(
                    f"MODOMO_{name.upper()}: lower-case letters, digits and _ only, "
                    f"starting with a letter, got {getattr(self, name)!r}"
                )
        if self.db_schema == self.db_log_schema:
            raise SettingsError("MODOMO_DB_LOG_SCHEMA: must differ from MODOMO_DB_SCHEMA")
        if self.projector_batch < 1:
            raise SettingsError("MODOMO_PROJECTOR_BATCH: must be at least 1")
        for name in ("db_connect_timeout_s", "db_command_timeout_s"):
            if not 0 < getattr(self, name) < float("inf"):
                raise SettingsError(f"MODOMO_{name.upper()}: must be a positive number of seconds")
        if self.projector_lease_ms < 100:
            raise SettingsError("MODOMO_PROJECTOR_LEASE_MS: must be at least 100")
        if not 0 <= self.projector_trim_interval_s < float("inf"):
            raise SettingsError(
                "MODOMO_PROJECTOR_TRIM_INTERVAL_S: must be a finite number of seconds (0: never)"
            )
        if self.supervisor_max_restarts < 0:
            raise SettingsError("MODOMO_SUPERVISOR_MAX_RESTARTS: must not be negative")
        if not 0 < self.supervisor_window_s < float("inf"):
            raise SettingsError("MODOMO_SUPERVISOR_WINDOW_S: must be a positive number of seconds")
        if self.projector_trim_margin < 0:
            raise SettingsError("MODOMO_PROJECTOR_TRIM_MARGIN: must not be negative")
        if ":" in self.redis_prefix or not self.redis_prefix:
            raise SettingsError("MODOMO_REDIS_PREFIX: must be non-empty and contain no ':'")

    @property
    def exposed(self) -> tuple[str, ...]:
        """The servers of these settings that listen beyond loopback, as ``VAR is host``."""
        listeners = (
            ("MODOMO_API_HOST", self.api_host, True),
            ("MODOMO_WORKER_HTTP_HOST", self.worker_http_host, self.worker_http_port != 0),
            ("MODOMO_METRICS_HOST", self.metrics_host, self.metrics_port != 0),
        )
        return tuple(
            f"{var} is {host}" for var, host, on in listeners if on and not is_loopback(host)
        )

    def _refuse_built_in_secrets(self) -> None:
        # Anyone who read this source knows the built-in secrets: with them, a server
        # reachable from the network would let anyone mint admin tokens or read the bucket.
        exposed = self.exposed
        if not exposed:
            return
        where = f"({', '.join(exposed)})"
        if self.jwt_secret == DEV_JWT_SECRET:
            raise SettingsError(
                "MODOMO_JWT_SECRET: set a secret of your own before serving beyond loopback "
                + where
            )
        if self.s3_secret_access_key == DEV_S3_SECRET:
            raise SettingsError(
                "MODOMO_S3_SECRET_ACCESS_KEY: set the bucket's own secret, not the built-in "
                f"one, before serving beyond loopback {where}"
            )
        if not has_password(self.redis_url):
            raise SettingsError(
                "MODOMO_REDIS_URL: give Redis a password (redis://:<password>@host) before "
                f"serving beyond loopback {where}"
            )
        worker_exposed = self.worker_http_port and not is_loopback(self.worker_http_host)
        if worker_exposed and not self.worker_token:
            raise SettingsError(
                "MODOMO_WORKER_TOKEN: set a token for the GPU worker's POST /warmup before it "
                f"listens beyond loopback {where}"
            )

    @property
    def browser_origins(self) -> tuple[str, ...]:
        """Origins a browser runs the review app from: ``cors_origins`` and, when the API
        listens on loopback, its own (it serves the app at ``/app``). The bucket's CORS
        rules grant these, so the app can upload and read images straight from storage."""
        own: tuple[str, ...] = ()
        if self.api_host in _LOOPBACK:
            own = tuple(f"http://{host}:{self.api_port}" for host in ("127.0.0.1", "localhost"))
        return tuple(dict.fromkeys((*self.cors_origins, *own)))

    @property
    def redis_url_redacted(self) -> str:
        """``redis_url`` with any password replaced, for messages and logs."""
        return redact_url(self.redis_url)

    def backoff_ms(self, deliveries: int) -> int:
        """Idle time a task must reach after ``deliveries`` deliveries before the next one."""
        index = min(max(deliveries, 1), len(self.retry_backoff_ms)) - 1
        return self.retry_backoff_ms[index]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every ``MODOMO_*`` variable; ``overrides`` win over the environment."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            var = f"MODOMO_{name.upper()}"
            if name not in overrides and var in env:
                values[name] = _parse(var, env[var], hints[name])
        values.update(overrides)
        try:
            # convert() checks every value's type, which a plain constructor call does not.
            return msgspec.convert(values, cls)
        except msgspec.ValidationError as exc:
            message = str(exc)
            if message.startswith("MODOMO_"):  # raised by __post_init__, already named
                raise SettingsError(message) from None
            field = message.rsplit("$.", 1)[-1].rstrip("`").split("[")[0]
            raise SettingsError(f"MODOMO_{field.upper()}: {message}") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def has_password(url: str) -> bool:
    """Whether a Redis URL carries a password (``redis://:pw@host`` or ``?password=``)."""
    parts = urlsplit(url)
    return bool(parts.password) or bool(parse_qs(parts.query).get("password", [""])[0])


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _parse(var: str, raw: str, hint: Any) -> Any:
    raw = raw.strip()
    try:
        if hint is int:
            return int(raw)
        if hint is float:
            value = float(raw)
            if value != value:  # NaN compares unequal to itself
                raise ValueError("expected a number")
            return value
        if hint == tuple[int, ...]:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        if hint == tuple[str, ...]:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if getattr(hint, "__origin__", None) is Literal:
            allowed = get_args(hint)
            if raw not in allowed:
                raise ValueError(f"expected one of {', '.join(allowed)}")
            return raw
    except ValueError as exc:
        kind = getattr(hint, "__name__", str(hint))
        reason = str(exc) if "expected" in str(exc) else f"expected {kind}"
        raise SettingsError(f"{var}: {reason}, got {raw!r}") from None
    return raw
