"""Ending a job: the last scene to end appends ``job_done``, atomically, exactly once; then
everything the job keeps in Redis expires after ``job_retention_s``.

When a job is created its number of scenes is recorded (``<prefix>:jobs:meta:<job_id>``,
in the same transaction as its events and tasks). Each scene's end (ok, partial, or failed
for good) is recorded once per scene by a script that runs inside the transaction acking
the task; the one that brings the count to the total also appends the ``job_done`` event,
prepared by the caller with placeholders the script fills with the final counts, and
sets the job's stream, meta hash, ended and done sets to expire after the retention (the
Postgres archive keeps every event; the SSE route serves an expired job from it).
"""

from __future__ import annotations

from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.codec import CODEC
from modomo.domain.events import JobCompleted
from modomo.streams.keys import Keys

Outcome = Literal["ok", "partial", "failed"]

_END_SCENE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '-1')
if redis.call('SCARD', KEYS[2]) ~= total then return 0 end
if redis.call('HSETNX', KEYS[1], 'completed', '1') == 0 then return 0 end
for i = 1, 5 do
  if i ~= 3 then redis.call('EXPIRE', KEYS[i], ARGV[5]) end
end
local ok = tonumber(redis.call('HGET', KEYS[1], 'ok') or '0')
local partial = tonumber(redis.call('HGET', KEYS[1], 'partial') or '0')
local failed = tonumber(redis.call('HGET', KEYS[1], 'failed') or '0')
local status = 'partial'
if ok == total then status = 'succeeded' elseif failed == total then status = 'failed' end
local payload = ARGV[3]
payload = string.gsub(payload, '"__STATUS__"', '"' .. status .. '"')
payload = string.gsub(payload, '"__OK__"', tostring(ok))
payload = string.gsub(payload, '"__PARTIAL__"', tostring(partial))
payload = string.gsub(payload, '"__FAILED__"', tostring(failed))
redis.call('XADD', KEYS[3], '*', 'event', payload)
redis.call('XADD', KEYS[4], '*', 'event', payload)
return 1
"""
"""KEYS: job meta hash, ended set, the log, the job stream, the job's done set. ARGV: scene
id, outcome, job_done payload with placeholders, TTL of the bookkeeping in seconds, how
long everything of the job stays after job_done (its stream and every key but the log)."""

_REOPEN = """
for i = 1, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'failed', -1)
end
redis.call('HDEL', KEYS[1], 'completed')
return 1
"""
"""KEYS: job meta hash, ended set, the job stream, the done set. ARGV: scene id, TTL of
the bookkeeping. Every key of the job lives again for the TTL (or until the job ends once
more). A job whose bookkeeping already expired is not reopened: its retried scene runs
and its events reach the log, but it ends no job a second time."""


class JobCompletion:
    """Bookkeeping of which scenes of a job have ended."""

    def __init__(self, redis: Redis, keys: Keys, ttl_s: int, retention_s: int = 24 * 3600) -> None:
        self.keys = keys
        self.ttl_s = ttl_s
        self.retention_s = retention_s
        self._script = redis.register_script(_END_SCENE)
        self._reopen = redis.register_script(_REOPEN)

    def stage_total(self, pipe: Pipeline, job_id: str, total: int) -> None:
        """Queue the recording of a new job's scene count (with its job_created)."""
        pipe.hset(self.keys.job_meta(job_id), "total", total)
        pipe.expire(self.keys.job_meta(job_id), self.ttl_s)

    async def stage_end(self, pipe: Pipeline, job_id: str, scene_id: str, outcome: Outcome) -> None:
        """Queue recording that ``scene_id`` ended; appends job_done if it was the last."""
        template = (
            CODEC.encode(
                JobCompleted(
                    job_id=job_id,
                    status="succeeded",
                    ok=0,
                    partial=0,
                    failed=0,
                )
            )
            .replace(b'"status":"succeeded"', b'"status":"__STATUS__"')
            .replace(b'"ok":0', b'"ok":"__OK__"')
            .replace(b'"partial":0', b'"partial":"__PARTIAL__"')
            .replace(b'"failed":0', b'"failed":"__FAILED__"')
        )
        await self._script(
            keys=[
                self.keys.job_meta(job_id),
                self.keys.job_ended(job_id),
                self.keys.events,
                self.keys.job_events(job_id),
                self.keys.done(job_id),
            ],
            args=[scene_id, outcome, template, self.ttl_s, self.retention_s],
            client=pipe,
        )

    async def stage_reopen(self, pipe: Pipeline, job_id: str, scene_id: str) -> None:
        """Queue forgetting that ``scene_id`` ended as failed (an operator retried it); the
        job's keys live again until it ends once more."""
        await self._reopen(
            keys=[
                self.keys.job_meta(job_id),
                self.keys.job_ended(job_id),
                self.keys.job_events(job_id),
                self.keys.done(job_id),
            ],
            args=[scene_id, self.ttl_s],
            client=pipe,
        )
