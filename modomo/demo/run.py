"""``modomo demo``: the whole product on this machine, through its HTTP API.

Starts (or finds) the services, generates synthetic room photos, creates a dataset,
uploads every photo through its presigned URL, registers the scenes, starts a job, follows
it over SSE with a progress bar, and prints a summary. ``modomo up`` runs the same
services without the demo data, until SIGTERM or SIGINT. The services are children of a
:class:`~modomo.demo.supervisor.Supervisor`: restarted when they die, all stopped on the
way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from modomo.api.auth import issue_token
from modomo.demo.services import (
    ServiceError,
    databases,
    modomo_child,
    s3_child,
    wait_ready,
)
from modomo.demo.supervisor import Supervisor
from modomo.projections import db
from modomo.projections.migrate import migrate
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.synthetic.rooms import room

T = TypeVar("T")


@contextlib.asynccontextmanager
async def _stack(settings: Settings, state: Path) -> AsyncIterator[tuple[str, Supervisor]]:
    """S3, API, projectors, the exporter and one GPU worker, supervised; yields the API's
    base URL."""
    supervisor = Supervisor(
        max_restarts=settings.supervisor_max_restarts, window_s=settings.supervisor_window_s
    )
    try:
        s3 = s3_child(settings, state)
        if s3 is not None:
            await supervisor.start(s3)
            await wait_ready(
                settings.s3_endpoint_url, s3, "SeaweedFS", supervisor, 60, any_answer=True
            )
        api = await supervisor.start(modomo_child("api", ["api"], settings, state))
        await supervisor.start(modomo_child("projectors", ["project"], settings, state))
        await supervisor.start(modomo_child("exporter", ["exporter"], settings, state))
        # A worker started by `up` waits for work for as long as `up` runs.
        worker = await supervisor.start(
            modomo_child("worker", ["worker"], settings, state, {"MODOMO_WORKER_IDLE_EXIT_S": "0"})
        )
        base = f"http://{settings.api_host}:{settings.api_port}"
        await wait_ready(f"{base}/health", api, "the API", supervisor)
        if settings.worker_http_port:
            await wait_ready(
                f"http://127.0.0.1:{settings.worker_http_port}/health",
                worker,
                "the GPU worker",
                supervisor,
                within_s=600,
            )
        yield base, supervisor
    finally:
        await supervisor.stop()


async def _prepare(settings: Settings) -> None:
    conn = await db.connect(settings, pooled=True)
    try:
        await migrate(conn, settings.db_schema, settings.db_log_schema)
    finally:
        await conn.close()


async def _bucket(settings: Settings) -> None:
    async with Storage.open(settings) as storage:
        await storage.ensure_bucket(settings.browser_origins)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _bar(done: int, total: int, counts: dict[str, int]) -> str:
    width = 30
    filled = int(width * done / total) if total else width
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} scenes "
        f"(ok {counts['ok']}, partial {counts['partial']}, failed {counts['failed']})"
    )


async def _follow(client: httpx.AsyncClient, job_id: str, total: int) -> dict[str, Any]:
    counts = {"ok": 0, "partial": 0, "failed": 0}
    tty = sys.stderr.isatty()
    final: dict[str, Any] = {}
    async with client.stream("GET", f"/jobs/{job_id}/events", timeout=None) as stream:
        kind = ""
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = msgspec.json.decode(line[5:])
                if kind == "scene_done":
                    counts[data["status"]] += 1
                elif kind == "scene_failed" and not data.get("will_retry"):
                    counts["failed"] += 1
                elif kind == "job_done":
                    final = data
                done = sum(counts.values())
                if tty:
                    print(_bar(done, total, counts), end="", file=sys.stderr, flush=True)
                elif kind in ("scene_done", "scene_failed"):
                    _say(_bar(done, total, counts).strip())
    if tty:
        print(file=sys.stderr)
    return final


async def _run_demo(
    settings: Settings, base: str, photos: list[tuple[str, bytes]]
) -> tuple[int, str]:
    """Upload ``photos`` (file name, JPEG), run a job over them, print a summary; the exit
    code and the job's id."""
    scenes = len(photos)
    token = issue_token(settings.jwt_secret, "demo", "admin", 24 * 3600)
    async with httpx.AsyncClient(
        base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        started = time.perf_counter()
        dataset = _ok(
            await client.post(
                "/datasets",
                json={
                    "name": f"demo rooms {time.strftime('%Y-%m-%d %H:%M:%S')}",
                    "description": "synthetic rooms generated by modomo demo",
                },
            )
        )
        dataset_id = dataset["dataset_id"]
        uploads = _ok(
            await client.post(
                f"/datasets/{dataset_id}/presign",
                json={
                    "files": [
                        {
                            "filename": name,
                            "content_type": "image/jpeg",
                            "size_bytes": len(photo),
                        }
                        for name, photo in photos
                    ]
                },
            )
        )["uploads"]
        async with httpx.AsyncClient(timeout=60) as plain:
            for upload, (_, photo) in zip(uploads, photos, strict=True):
                # The form's fields, then the file: the storage checks it against the policy.
                put = await plain.post(
                    upload["url"],
                    data=upload["fields"],
                    files={"file": (upload["filename"], photo, "image/jpeg")},
                )
                if put.status_code not in (200, 201, 204):
                    raise ServiceError(
                        f"upload of {upload['filename']} refused: "
                        f"{put.status_code} {put.text[:200]}"
                    )
        _say(f"uploaded {len(photos)} photos through presigned POST forms")
        _ok(
            await client.post(
                f"/datasets/{dataset_id}/register-scenes",
                json={
                    "scenes": [
                        {"scene_id": u["scene_id"], "filename": u["filename"]} for u in uploads
                    ]
                },
            )
        )
        job = _ok(await client.post("/jobs", json={"dataset_id": dataset_id}))
        job_id = job.get("job_id") or await _job_of(client, dataset_id)
        _say(f"job {job_id}: {scenes} scenes queued; following it live over SSE")
        final = await _follow(client, job_id, scenes)
        elapsed = time.perf_counter() - started
        summary = await _settled(client, job_id)
        colours = _ok(
            await client.get("/stats/distribution/colour", params={"dataset_id": dataset_id})
        )
        page = _ok(await client.get(f"/datasets/{dataset_id}/scenes", params={"limit": 500}))
    objects = sum(item["object_count"] for item in page["items"])
    print(f"\nModomo demo: {scenes} scenes in {elapsed:.1f} s (job {summary['status']})\n")
    print(
        f"  scenes   ok {summary['ok']}, partial {summary['partial']}, failed {summary['failed']}"
    )
    print(f"  objects  {objects}")
    print("\n  stage       runs   p50 ms   p95 ms")
    for timing in summary.get("stage_timings") or []:
        print(
            f"  {timing['stage']:<10} {timing['count']:>5} {timing['p50_ms']:>8.1f} "
            f"{timing['p95_ms']:>8.1f}"
        )
    print(
        "\n  top palette colours: "
        + ", ".join(f"{c['key']} ({c['share']:.0%})" for c in colours[:5])
    )
    first = page["items"][0]["scene_id"] if page["items"] else ""
    print(f"\n  review app   {app_link(base, token, f'/datasets/{dataset_id}')}")
    print(f"  API schema   {base}/schema   (JSON: {base}/schema/openapi.json)")
    print(f"  a scene      {base}/scenes/{first}")
    print(f"  metrics      {base}/metrics")
    print(f"  bearer token for trying them: {token}\n")
    return (0 if final.get("status") in ("succeeded", "partial") else 1), job_id


def app_link(base: str, token: str, page: str = "/") -> str:
    """A link that opens the review app signed in. The token rides in the fragment, which
    a browser never sends to a server, so it appears in no access log; the app moves it
    into its storage and drops it from the address bar."""
    return f"{base}/app{page}#token={token}"


async def _settled(client: httpx.AsyncClient, job_id: str) -> Any:
    """The job as the read model shows it once the projection has caught up with its end."""
    for _ in range(300):
        summary = _ok(await client.get(f"/jobs/{job_id}"))
        if summary["status"] in ("succeeded", "partial", "failed"):
            return summary
        await asyncio.sleep(0.1)
    return summary


async def _job_of(client: httpx.AsyncClient, dataset_id: str) -> str:
    # A 202 (the projection was slow) carries no job id yet: find it once it is visible.
    for _ in range(100):
        jobs = _ok(await client.get("/jobs", params={"dataset_id": dataset_id}))["items"]
        if jobs:
            return str(jobs[0]["job_id"])
        await asyncio.sleep(0.1)
    raise ServiceError("the job never became visible in the read model")


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ServiceError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response.json()


def local_profile(settings: Settings) -> Settings:
    """The demo's model profile, made explicit: ``real`` when pulled weights are in the
    model directory, else ``tiny`` (random weights). A worker never guesses this itself:
    outside the demo, ``auto`` without real weights refuses to start."""
    from modomo.gpu.manifest import read_manifest

    if settings.model_profile != "auto":
        return settings
    manifest = read_manifest(Path(settings.model_dir))
    profile = "real" if manifest is not None and manifest.profile == "real" else "tiny"
    return msgspec.structs.replace(settings, model_profile=profile)


@contextlib.asynccontextmanager
async def _services(
    settings: Settings, state: Path
) -> AsyncIterator[tuple[Settings, str, Supervisor]]:
    """Everything up and migrated; yields the settings in force, the API's URL and the
    supervisor of the children."""
    state.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    settings = local_profile(settings)
    async with databases(settings, state) as settings:
        await _prepare(settings)
        async with _stack(settings, state) as (base, supervisor):
            await _bucket(settings)
            yield settings, base, supervisor


async def demo(
    settings: Settings, scenes: int, state: Path, stay: bool, golden: Path | None = None
) -> int:
    """Run the demo; 0 when the job ended with every scene processed (ok or partial).

    With ``golden`` (a folder from ``modomo golden``), its images are the photos, and the
    job is then scored against its ground truth (``modomo eval``), the report printed. A
    child that keeps crashing meanwhile ends the demo (:class:`CrashLoop`). With ``stay``,
    everything keeps running after the summary (so its links answer) until Ctrl-C or
    SIGTERM, which then end the demo with its job's code; without, the services stop once
    the summary is printed.
    """
    if golden is None:
        photos = [(f"room-{i:03d}.jpg", room(i)) for i in range(scenes)]
    else:
        photos = [(p.name, p.read_bytes()) for p in sorted((golden / "images").glob("*.jpg"))]
        if not photos:
            raise ServiceError(f"no images under {golden / 'images'}: run `modomo golden` first")
    async with _services(settings, state) as (settings, base, supervisor):
        _say(
            f"services up (logs in {state / 'logs'}); model profile "
            f"{settings.model_profile} (tiny, random weights, unless real ones are in "
            f"{settings.model_dir})"
        )
        code, job_id = await _first(_run_demo(settings, base, photos), supervisor.wait_failed())
        if golden is not None:
            await _evaluate(settings, golden, job_id)
        if stay:
            _say(
                "Everything keeps running: open the review app link above. Ctrl-C stops it all "
                "(`modomo demo --exit` ends after the summary instead)."
            )
            try:
                await supervisor.wait_failed()
            except asyncio.CancelledError:
                # Ctrl-C or SIGTERM (until_signalled) after the summary: how a demo that
                # stays is meant to end; its code is the job's.
                return code
        return code


async def _evaluate(settings: Settings, golden: Path, job_id: str) -> None:
    """Score the job against the golden set, record it, print the report."""
    from modomo.cli_products import evaluate_and_record
    from modomo.evaluate.report import render

    event = await evaluate_and_record(settings, golden / "ground_truth.json", job_id, "demo")
    print(render(event))


async def up(settings: Settings, state: Path) -> int:
    """Run the services until SIGTERM or SIGINT (0), or until a child keeps crashing
    (:class:`CrashLoop`)."""
    async with _services(settings, state) as (settings, base, supervisor):
        token = issue_token(settings.jwt_secret, "admin", "admin", 24 * 3600)
        _say(
            f"Modomo is up: API {base} (schema {base}/schema), logs in {state / 'logs'}.\n"
            f"  review app, signed in: {app_link(base, token)}\n"
            "Ctrl-C stops everything."
        )
        await supervisor.wait_failed()
    return 0


async def _first(main: Coroutine[Any, Any, T], failed: Coroutine[Any, Any, None]) -> T:
    """``main``'s result, unless ``failed`` raises first (then ``main`` is cancelled)."""
    work, watch = asyncio.ensure_future(main), asyncio.ensure_future(failed)
    try:
        await asyncio.wait((work, watch), return_when=asyncio.FIRST_COMPLETED)
        if watch.done():
            watch.result()
        return work.result()
    finally:
        for task in (work, watch):
            task.cancel()


def until_signalled(body: Coroutine[Any, Any, int], stopped: int) -> Coroutine[Any, Any, int]:
    """``body`` run so that SIGTERM or SIGINT (from a terminal or sent to the pid, even
    when a shell started us with SIGINT ignored) cancels it, which stops every child on
    the way out; a second signal changes nothing. Returns ``stopped`` after such a stop."""

    async def run() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(body)
        signalled: list[int] = []

        def stop(sig: signal.Signals) -> None:
            if not signalled:
                signalled.append(sig)
                _say(f"{sig.name}: stopping every service")
                task.cancel()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        try:
            return await task
        except asyncio.CancelledError:
            if signalled:
                return stopped
            raise
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return run()
