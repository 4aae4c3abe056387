"""Stage flags and scene tasks, the taxonomies, and settings read from the environment."""

from __future__ import annotations

import itertools
import re
from typing import Any, get_type_hints

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modomo.domain.stages import STAGES, SceneTask, Stage, StageFlags
from modomo.domain.taxonomies import (
    COCO_TO_CATEGORY,
    FURNITURE,
    MATERIALS,
    SCENE_TYPES,
    STYLES,
    TAXONOMIES,
    Taxonomy,
    Term,
)
from modomo.settings import Settings, SettingsError

# --- stages ----------------------------------------------------------------------------------

ALL_FLAGS = [
    StageFlags(**dict(zip(STAGES, values, strict=True)))
    for values in itertools.product((False, True), repeat=len(STAGES))
]


def test_all_flag_combinations_are_distinct() -> None:
    assert len(STAGES) == 9
    assert len(set(STAGES)) == 9
    assert len({flags.enabled() for flags in ALL_FLAGS}) == 512


@pytest.mark.parametrize("wanting", ["segment", "material"])
def test_object_stages_pull_in_detect(wanting: Stage) -> None:
    flags = StageFlags(detect=False, label=False)
    assert "detect" not in flags.enabled()
    assert "detect" in flags.resolved()
    assert "label" not in flags.resolved()
    only = StageFlags(**{stage: stage == wanting for stage in STAGES})
    assert only.resolved() == tuple(s for s in STAGES if s in {"detect", wanting})


def test_label_alone_satisfies_object_stages() -> None:
    flags = StageFlags(detect=False)
    assert "label" in flags.resolved()
    assert "detect" not in flags.resolved()


def test_default_flags_run_everything() -> None:
    assert StageFlags().enabled() == STAGES
    assert StageFlags().resolved() == STAGES


def test_no_stages_resolve_to_none() -> None:
    assert StageFlags(**dict.fromkeys(STAGES, False)).resolved() == ()


def flag_id(flags: StageFlags) -> str:
    return "".join("1" if getattr(flags, stage) else "0" for stage in STAGES)


@pytest.mark.parametrize("flags", ALL_FLAGS, ids=flag_id)
def test_resolved_over_every_combination(flags: StageFlags) -> None:
    enabled = flags.enabled()
    resolved = flags.resolved()
    assert enabled == tuple(stage for stage in STAGES if getattr(flags, stage))
    assert set(resolved) >= set(enabled)
    assert resolved == tuple(stage for stage in STAGES if stage in resolved)
    if {"segment", "material"} & set(resolved):
        assert {"detect", "label"} & set(resolved)
    added = set(resolved) - set(enabled)
    needs_detect = bool({"segment", "material"} & set(enabled)) and not (
        {"detect", "label"} & set(enabled)
    )
    assert added == ({"detect"} if needs_detect else set())


FLAGS = st.builds(StageFlags, **dict.fromkeys(STAGES, st.booleans()))
SCENE_TASKS = st.builds(
    SceneTask,
    job_id=st.text(),
    scene_id=st.text(),
    r2_key_original=st.text(),
    resize_max_px=st.integers(-(2**63), 2**63 - 1),
    stages=FLAGS,
    prior_attempts=st.integers(-(2**63), 2**63 - 1),
)


@settings(max_examples=200, deadline=None)
@given(task=SCENE_TASKS)
def test_scene_task_round_trips_through_json(task: SceneTask) -> None:
    encoded = msgspec.json.encode(task)
    assert msgspec.json.decode(encoded, type=SceneTask) == task


def test_scene_task_defaults_from_minimal_json() -> None:
    task = msgspec.json.decode(
        b'{"job_id": "j", "scene_id": "s", "r2_key_original": "k"}', type=SceneTask
    )
    assert task == SceneTask(job_id="j", scene_id="s", r2_key_original="k")
    assert task.stages == StageFlags()
    assert (task.resize_max_px, task.prior_attempts) == (1280, 0)


def test_stage_flags_forbid_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="depht"):
        msgspec.json.decode(b'{"depht": false}', type=StageFlags)
    payload = b'{"job_id": "j", "scene_id": "s", "r2_key_original": "k", "stages": {"depht": 0}}'
    with pytest.raises(msgspec.ValidationError, match="depht"):
        msgspec.json.decode(payload, type=SceneTask)


def test_stage_flags_partial_json_keeps_other_defaults() -> None:
    flags = msgspec.json.decode(b'{"depth": false}', type=StageFlags)
    assert flags.enabled() == tuple(stage for stage in STAGES if stage != "depth")


def test_stage_flags_reject_non_bool() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"depth": "no"}', type=StageFlags)


# --- taxonomies ------------------------------------------------------------------------------

CODE = re.compile(r"^[a-z][a-z0-9_]*$")
ALL_TAXONOMIES = [SCENE_TYPES, STYLES, MATERIALS, FURNITURE]


def test_taxonomies_registry() -> None:
    assert {t.kind: t for t in ALL_TAXONOMIES} == TAXONOMIES
    assert len(TAXONOMIES) == 4


@pytest.mark.parametrize("taxonomy", ALL_TAXONOMIES, ids=lambda t: t.kind)
def test_codes_are_unique_and_well_formed(taxonomy: Taxonomy) -> None:
    codes = taxonomy.codes()
    assert codes
    assert len(set(codes)) == len(codes)
    assert all(CODE.match(code) for code in codes)
    assert all(code.isascii() for code in codes)


@pytest.mark.parametrize("taxonomy", ALL_TAXONOMIES, ids=lambda t: t.kind)
def test_lookup(taxonomy: Taxonomy) -> None:
    assert len(taxonomy.names()) == len(taxonomy.prompts()) == len(taxonomy.terms)
    for term in taxonomy.terms:
        assert taxonomy.get(term.code) is term
        assert term.code in taxonomy
        assert term.name.strip()
        assert term.prompt.strip()
    assert "no_such_code" not in taxonomy
    assert 1 not in taxonomy
    assert None not in taxonomy
    with pytest.raises(KeyError, match=f"unknown {taxonomy.kind} code 'no_such_code'"):
        taxonomy.get("no_such_code")


def test_coco_categories_are_furniture_codes() -> None:
    assert COCO_TO_CATEGORY
    for coco, code in COCO_TO_CATEGORY.items():
        assert code in FURNITURE, f"{coco!r} maps to unknown category {code!r}"


def test_taxonomy_refuses_bad_or_duplicate_codes() -> None:
    with pytest.raises(ValueError, match="invalid thing code 'Bad Code'"):
        Taxonomy(kind="thing", terms=(Term("Bad Code", "Bad", "bad"),))
    with pytest.raises(ValueError, match="duplicate thing code 'a'"):
        Taxonomy(kind="thing", terms=(Term("a", "A", "a"), Term("a", "A again", "a")))
    assert Taxonomy(kind="thing", terms=(Term("a1_b", "A", "a"),)).codes() == ("a1_b",)


def test_terms_are_immutable() -> None:
    term = SCENE_TYPES.terms[0]
    with pytest.raises(AttributeError):
        term.code = "other"  # type: ignore[misc]


# --- settings --------------------------------------------------------------------------------

INT_VARS = [
    "MODOMO_PRESIGN_TTL_S",
    "MODOMO_MAX_ATTEMPTS",
    "MODOMO_HEARTBEAT_MS",
    "MODOMO_RECLAIM_INTERVAL_MS",
    "MODOMO_BLOCK_MS",
    "MODOMO_LOCK_TTL_MS",
    "MODOMO_ATTEMPTS_TTL_S",
    "MODOMO_METRICS_PORT",
    "MODOMO_DB_STATEMENT_CACHE_SIZE",
    "MODOMO_PROJECTOR_BATCH",
    "MODOMO_API_PORT",
    "MODOMO_REDIS_MAX_CONNECTIONS",
    "MODOMO_MAX_UPLOAD_BYTES",
    "MODOMO_WRITE_WAIT_MS",
    "MODOMO_SCENE_CACHE_SIZE",
    "MODOMO_SSE_TICKET_TTL_S",
    "MODOMO_MODEL_SEED",
    "MODOMO_TORCH_THREADS",
    "MODOMO_WORKER_CONCURRENCY",
    "MODOMO_WORKER_MAX_BATCH",
    "MODOMO_WORKER_HTTP_PORT",
    "MODOMO_PROJECTOR_LEASE_MS",
    "MODOMO_PROJECTOR_TRIM_MARGIN",
    "MODOMO_SUPERVISOR_MAX_RESTARTS",
    "MODOMO_REDIS_HEALTH_CHECK_S",
    "MODOMO_REDIS_RETRY_MAX_MS",
    "MODOMO_JOB_RETENTION_S",
    "MODOMO_WRITE_RATE_LIMIT",
    "MODOMO_WRITE_RATE_WINDOW_S",
]


def from_env(**env: str) -> Settings:
    return Settings.from_env(env)


def test_int_vars_are_every_int_setting() -> None:
    hints = get_type_hints(Settings)
    assert sorted(INT_VARS) == sorted(
        f"MODOMO_{name.upper()}" for name in Settings.__struct_fields__ if hints[name] is int
    )


def test_defaults() -> None:
    defaults = Settings.from_env({})
    assert defaults == Settings()
    assert defaults.redis_url == "redis://127.0.0.1:6379/0"
    assert defaults.redis_prefix == "modomo"
    assert defaults.max_attempts == 3
    assert defaults.retry_backoff_ms == (15_000, 60_000)
    assert defaults.heartbeat_ms == 5_000
    assert defaults.lock_ttl_ms == 20_000
    assert defaults.shutdown_grace_s == 60.0
    assert defaults.log_format == "auto"
    assert defaults.metrics_port == 0


def test_unrelated_variables_are_ignored() -> None:
    env = {"PATH": "/bin", "MODOMO_NO_SUCH": "x", "modomo_max_attempts": "x"}
    assert Settings.from_env(env) == Settings()


def test_values_are_parsed_and_stripped() -> None:
    parsed = from_env(
        MODOMO_MAX_ATTEMPTS=" 5 ",
        MODOMO_SHUTDOWN_GRACE_S="2.5",
        MODOMO_REDIS_URL="rediss://:pw@cache:6380/1",
        MODOMO_REDIS_PREFIX="test-run",
        MODOMO_LOG_FORMAT="json",
        MODOMO_METRICS_PORT="9100",
    )
    assert parsed.max_attempts == 5
    assert parsed.shutdown_grace_s == 2.5
    assert parsed.redis_url == "rediss://:pw@cache:6380/1"
    assert parsed.redis_prefix == "test-run"
    assert parsed.log_format == "json"
    assert parsed.metrics_port == 9100


def test_overrides_win_over_the_environment() -> None:
    parsed = Settings.from_env({"MODOMO_MAX_ATTEMPTS": "5"}, max_attempts=7)
    assert parsed.max_attempts == 7


@pytest.mark.parametrize("var", INT_VARS)
@pytest.mark.parametrize("raw", ["abc", "", "1.5", "0x10", "3 apples"])
def test_malformed_int_names_its_variable(var: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=f"^{var}: expected int") as info:
        from_env(**{var: raw})
    assert repr(raw.strip()) in str(info.value)


@pytest.mark.parametrize("raw", ["soon", "", "1,5"])
def test_malformed_float_names_its_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_SHUTDOWN_GRACE_S: expected float"):
        from_env(MODOMO_SHUTDOWN_GRACE_S=raw)


def test_retry_backoff_list() -> None:
    parsed = from_env(MODOMO_RETRY_BACKOFF_MS="100,400", MODOMO_HEARTBEAT_MS="50")
    assert parsed.retry_backoff_ms == (100, 400)
    spaced = from_env(MODOMO_RETRY_BACKOFF_MS=" 100 , 400,, 900 ", MODOMO_HEARTBEAT_MS="50")
    assert spaced.retry_backoff_ms == (100, 400, 900)


@pytest.mark.parametrize("raw", ["abc", "100,x", "1.5"])
def test_malformed_retry_backoff_names_its_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_RETRY_BACKOFF_MS"):
        from_env(MODOMO_RETRY_BACKOFF_MS=raw)


@pytest.mark.parametrize("raw", ["", ",", "0,100000", "100000,-5"])
def test_retry_backoff_must_be_positive_and_non_empty(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_RETRY_BACKOFF_MS"):
        from_env(MODOMO_RETRY_BACKOFF_MS=raw)


def test_heartbeat_at_most_half_the_shortest_backoff() -> None:
    assert from_env(MODOMO_HEARTBEAT_MS="7500").heartbeat_ms == 7500
    with pytest.raises(SettingsError, match=r"^MODOMO_HEARTBEAT_MS") as info:
        from_env(MODOMO_HEARTBEAT_MS="7501")
    assert "15000" in str(info.value)
    with pytest.raises(SettingsError, match=r"^MODOMO_HEARTBEAT_MS"):
        from_env(MODOMO_RETRY_BACKOFF_MS="60000,5000")


def test_lock_ttl_more_than_two_heartbeats() -> None:
    assert from_env(MODOMO_LOCK_TTL_MS="10001").lock_ttl_ms == 10001
    with pytest.raises(SettingsError, match=r"^MODOMO_LOCK_TTL_MS"):
        from_env(MODOMO_LOCK_TTL_MS="10000")


@pytest.mark.parametrize("raw", ["0", "-3"])
def test_max_attempts_at_least_one(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_MAX_ATTEMPTS"):
        from_env(MODOMO_MAX_ATTEMPTS=raw)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "", "postgresql://db/x", "REDIS-ish"]
)
def test_bad_redis_url_names_its_variable(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_REDIS_URL"):
        from_env(MODOMO_REDIS_URL=url)


@pytest.mark.parametrize("url", ["redis://h", "rediss://h:6380/2", "unix:///run/redis.sock"])
def test_good_redis_urls(url: str) -> None:
    assert from_env(MODOMO_REDIS_URL=url).redis_url == url


@pytest.mark.parametrize("prefix", ["", "  ", "a:b"])
def test_bad_redis_prefix_names_its_variable(prefix: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_REDIS_PREFIX"):
        from_env(MODOMO_REDIS_PREFIX=prefix)


@pytest.mark.parametrize("raw", ["xml", "JSON", ""])
def test_bad_log_format_names_its_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_LOG_FORMAT: expected one of auto, json"):
        from_env(MODOMO_LOG_FORMAT=raw)


@pytest.mark.parametrize("raw", ["auto", "json", "console"])
def test_log_formats(raw: str) -> None:
    assert from_env(MODOMO_LOG_FORMAT=raw).log_format == raw


def test_override_checked_too() -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_MAX_ATTEMPTS"):
        Settings.from_env({}, max_attempts=0)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_backoff_ms_examples() -> None:
    parsed = Settings(retry_backoff_ms=(100, 400, 900), heartbeat_ms=50)
    assert [parsed.backoff_ms(n) for n in range(1, 7)] == [100, 400, 900, 900, 900, 900]
    assert parsed.backoff_ms(0) == 100
    assert parsed.backoff_ms(-4) == 100
    assert Settings().backoff_ms(1) == 15_000
    assert Settings().backoff_ms(2) == 60_000
    assert Settings().backoff_ms(50) == 60_000


@settings(max_examples=200, deadline=None)
@given(
    backoff=st.lists(st.integers(1_000, 10**9), min_size=1, max_size=6).map(tuple),
    deliveries=st.integers(-5, 20),
)
def test_backoff_ms_is_the_nth_value_then_the_last(
    backoff: tuple[int, ...], deliveries: int
) -> None:
    parsed = Settings(retry_backoff_ms=backoff, heartbeat_ms=500, lock_ttl_ms=1_001)
    value = parsed.backoff_ms(deliveries)
    if 1 <= deliveries <= len(backoff):
        assert value == backoff[deliveries - 1]
    elif deliveries > len(backoff):
        assert value == backoff[-1]
    else:
        assert value == backoff[0]


def env_values() -> dict[str, Any]:
    """One valid non-default value per variable, to check every field is read."""
    return {
        "MODOMO_REDIS_URL": "redis://:pw@other:1/2",
        "MODOMO_REDIS_PREFIX": "p",
        "MODOMO_DATABASE_URL": "postgresql://u@h/db",
        "MODOMO_S3_ENDPOINT_URL": "https://r2.example",
        "MODOMO_S3_REGION": "eu",
        "MODOMO_S3_BUCKET": "b",
        "MODOMO_S3_ACCESS_KEY_ID": "id",
        "MODOMO_S3_SECRET_ACCESS_KEY": "secret",
        "MODOMO_METRICS_NETWORKS": "10.0.0.0/8",
        "MODOMO_METRICS_TOKEN": "scrape",
        "MODOMO_METRICS_HOST": "0.0.0.0",
        "MODOMO_WRITE_RATE_LIMIT": "10",
        "MODOMO_WRITE_RATE_WINDOW_S": "30",
        "MODOMO_WORKER_HTTP_HOST": "::",
        "MODOMO_WORKER_TOKEN": "warm",
        "MODOMO_PRESIGN_TTL_S": "900",
        "MODOMO_MAX_ATTEMPTS": "4",
        "MODOMO_RETRY_BACKOFF_MS": "2000,4000",
        "MODOMO_HEARTBEAT_MS": "1000",
        "MODOMO_RECLAIM_INTERVAL_MS": "500",
        "MODOMO_BLOCK_MS": "250",
        "MODOMO_LOCK_TTL_MS": "3000",
        "MODOMO_ATTEMPTS_TTL_S": "60",
        "MODOMO_SHUTDOWN_GRACE_S": "1.5",
        "MODOMO_LOG_FORMAT": "console",
        "MODOMO_LOG_LEVEL": "debug",
        "MODOMO_METRICS_PORT": "9000",
        "MODOMO_DB_SCHEMA": "rm",
        "MODOMO_DB_LOG_SCHEMA": "lg",
        "MODOMO_DB_STATEMENT_CACHE_SIZE": "0",
        "MODOMO_PROJECTOR_BATCH": "50",
        "MODOMO_DB_API_ROLE": "modomo_api",
        "MODOMO_DB_CONNECT_TIMEOUT_S": "3",
        "MODOMO_DB_COMMAND_TIMEOUT_S": "30",
        "MODOMO_PROJECTOR_LEASE_MS": "4000",
        "MODOMO_PROJECTOR_TRIM_INTERVAL_S": "5",
        "MODOMO_PROJECTOR_TRIM_MARGIN": "100",
        "MODOMO_SUPERVISOR_MAX_RESTARTS": "2",
        "MODOMO_SUPERVISOR_WINDOW_S": "30",
        "MODOMO_API_HOST": "0.0.0.0",
        "MODOMO_REDIS_MAX_CONNECTIONS": "16",
        "MODOMO_API_PORT": "9090",
        "MODOMO_JWT_SECRET": "s" * 40,
        "MODOMO_CORS_ORIGINS": "https://a.example,https://b.example",
        "MODOMO_SSE_TICKET_TTL_S": "30",
        "MODOMO_WEB_DIR": "/srv/app",
        "MODOMO_MAX_UPLOAD_BYTES": "1000",
        "MODOMO_WRITE_WAIT_MS": "100",
        "MODOMO_SCENE_CACHE_SIZE": "10",
        "MODOMO_MODEL_PROFILE": "tiny",
        "MODOMO_MODEL_DIR": "/models",
        "MODOMO_MODEL_SEED": "7",
        "MODOMO_DEVICE": "cuda:1",
        "MODOMO_TORCH_THREADS": "2",
        "MODOMO_WORKER_MODE": "optimized",
        "MODOMO_WORKER_CONCURRENCY": "2",
        "MODOMO_WORKER_MAX_BATCH": "4",
        "MODOMO_WORKER_HTTP_PORT": "9191",
        "MODOMO_WORKER_IDLE_EXIT_S": "600",
        "MODOMO_REDIS_SOCKET_TIMEOUT_S": "20",
        "MODOMO_REDIS_CONNECT_TIMEOUT_S": "2",
        "MODOMO_REDIS_HEALTH_CHECK_S": "5",
        "MODOMO_REDIS_RETRY_MAX_MS": "1000",
        "MODOMO_JOB_RETENTION_S": "600",
        "MODOMO_QUEUE_TRIM_INTERVAL_S": "5",
        "MODOMO_TASK_TIMEOUT_S": "120",
        "MODOMO_STAGE_TIMEOUT_S": "60",
        "MODOMO_S3_TIMEOUT_S": "10",
        "MODOMO_STYLE_THRESHOLD": "0.3",
        "MODOMO_MATERIAL_THRESHOLD": "0.25",
        "MODOMO_DETECT_CONFIDENCE": "0.4",
        "MODOMO_LABEL_BOX_THRESHOLD": "0.35",
    }


def test_every_field_is_read_from_its_variable() -> None:
    env = env_values()
    assert sorted(env) == sorted(f"MODOMO_{name.upper()}" for name in Settings.__struct_fields__)
    parsed = Settings.from_env(env)
    defaults = Settings()
    for name in Settings.__struct_fields__:
        assert getattr(parsed, name) != getattr(defaults, name), name
    assert parsed.retry_backoff_ms == (2000, 4000)
    assert parsed.shutdown_grace_s == 1.5


def test_override_of_the_wrong_type_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_MAX_ATTEMPTS"):
        Settings.from_env({}, max_attempts="3")


def test_override_replaces_a_malformed_variable_of_the_same_field() -> None:
    assert Settings.from_env({"MODOMO_MAX_ATTEMPTS": "abc"}, max_attempts=4).max_attempts == 4


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("MODOMO_BLOCK_MS", "-5"),
        ("MODOMO_PRESIGN_TTL_S", "0"),
        ("MODOMO_PRESIGN_TTL_S", "299"),
        ("MODOMO_PRESIGN_TTL_S", "901"),
        ("MODOMO_WRITE_RATE_LIMIT", "-1"),
        ("MODOMO_WRITE_RATE_WINDOW_S", "0"),
        ("MODOMO_METRICS_NETWORKS", "10.0.0.0/33"),
        ("MODOMO_METRICS_PORT", "-1"),
        ("MODOMO_METRICS_PORT", "70000"),
        ("MODOMO_SHUTDOWN_GRACE_S", "nan"),
        ("MODOMO_SHUTDOWN_GRACE_S", "inf"),
        ("MODOMO_TASK_TIMEOUT_S", "0"),
        ("MODOMO_STAGE_TIMEOUT_S", "inf"),
        ("MODOMO_JOB_RETENTION_S", "0"),
        ("MODOMO_REDIS_CONNECT_TIMEOUT_S", "-1"),
        ("MODOMO_REDIS_RETRY_MAX_MS", "0"),
        ("MODOMO_S3_TIMEOUT_S", "nan"),
    ],
)
def test_out_of_range_values_name_their_variable(var: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{var}"):
        Settings.from_env({var: raw})


def test_the_development_jwt_secret_is_refused_beyond_loopback() -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_JWT_SECRET: set a secret"):
        Settings.from_env({"MODOMO_API_HOST": "0.0.0.0"})
    own = {
        "MODOMO_API_HOST": "0.0.0.0",
        "MODOMO_JWT_SECRET": "x" * 32,
        "MODOMO_S3_SECRET_ACCESS_KEY": "own",
        "MODOMO_REDIS_URL": "redis://:pw@redis:6379/0",
    }
    assert Settings.from_env(own).api_host == "0.0.0.0"
    with pytest.raises(SettingsError, match=r"at least 32"):
        Settings.from_env({"MODOMO_JWT_SECRET": "short"})
    with pytest.raises(SettingsError, match=r"at least 32"):
        Settings.from_env({"MODOMO_JWT_SECRET": "x" * 31})


@pytest.mark.parametrize(
    ("var", "raw", "says"),
    [
        ("MODOMO_DB_CONNECT_TIMEOUT_S", "0", "positive number of seconds"),
        ("MODOMO_DB_COMMAND_TIMEOUT_S", "inf", "positive number of seconds"),
        ("MODOMO_PROJECTOR_LEASE_MS", "50", "at least 100"),
        ("MODOMO_PROJECTOR_TRIM_INTERVAL_S", "-1", "finite number of seconds"),
        ("MODOMO_PROJECTOR_TRIM_MARGIN", "-5", "must not be negative"),
        ("MODOMO_SUPERVISOR_MAX_RESTARTS", "-1", "must not be negative"),
        ("MODOMO_SUPERVISOR_WINDOW_S", "0", "positive number of seconds"),
    ],
)
def test_fault_tolerance_settings_name_their_variable(var: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError, match=f"^{var}: .*{says}"):
        from_env(**{var: raw})


def test_a_stage_deadline_beyond_the_task_deadline_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^MODOMO_STAGE_TIMEOUT_S: must not exceed"):
        from_env(MODOMO_TASK_TIMEOUT_S="10", MODOMO_STAGE_TIMEOUT_S="11")
    assert from_env(MODOMO_TASK_TIMEOUT_S="10", MODOMO_STAGE_TIMEOUT_S="10").stage_timeout_s == 10


def test_the_redis_socket_timeout_must_outlast_every_blocking_read() -> None:
    # The SSE hub blocks 5 s; an idle blocking read must not look like an outage.
    with pytest.raises(SettingsError, match=r"^MODOMO_REDIS_SOCKET_TIMEOUT_S"):
        from_env(MODOMO_REDIS_SOCKET_TIMEOUT_S="5")
    with pytest.raises(SettingsError, match=r"^MODOMO_REDIS_SOCKET_TIMEOUT_S"):
        from_env(MODOMO_BLOCK_MS="10000", MODOMO_REDIS_SOCKET_TIMEOUT_S="10.5")
    assert from_env(MODOMO_REDIS_SOCKET_TIMEOUT_S="6").redis_socket_timeout_s == 6
