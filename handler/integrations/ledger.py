"""The submission ledger: which RunPod job a client key became, kept in Redis.

POST /run has no idempotency key (runpod-protocol.md §6), so a caller that retries, or a Celery
task that is redelivered, would submit the same work twice. The ledger makes a key the unit of
submission: a submitter must *claim* the key (atomically, like SET NX) before it sends /run, marks
each try as `sending`, and records the job id the moment /run answers. A second submitter of the
same key finds the record and picks that job up instead of submitting again.

Record states (one Redis hash per key, `{prefix}:job:{key}`; the claim's lease is a separate key
with a PX expiry, `{prefix}:lease:{key}`):

    queued     known (FastAPI accepted it, a task is on its way); nothing sent
    pending    claimed by a live submitter (lease), or by one whose lease ran out
    submitted  /run answered: `job_id` is recorded
    final      the job ended (COMPLETED, FAILED, CANCELLED, TIMED_OUT): `status`, `result`
    ambiguous  a /run may or may not have created a job; never submitted again by default
    rejected   /run refused it (4xx): no job exists
    cancelled  cancelled before it was submitted

Every script runs atomically on the server, so two submitters cannot both win a claim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis

__all__ = ["Claim", "Ledger", "Record", "token_digest"]

# KEYS[1] record, KEYS[2] lease; ARGV: owner, lease_ms, ttl_s, now
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
local function take(result)
  redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[1], 'sending', '0',
             'updated_at', ARGV[4])
  redis.call('HSETNX', KEYS[1], 'created_at', ARGV[4])
  redis.call('HSETNX', KEYS[1], 'attempts', '0')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return result
end
if state == false or state == 'queued' then return take('claimed') end
if state == 'pending' and redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('HGET', KEYS[1], 'sending') ~= '1' then return take('taken_over') end
  if ARGV[5] == 'force' then return take('forced') end
  return 'stale_sending'
end
return state
"""

# KEYS[1] record, KEYS[2] lease; ARGV: owner, lease_ms, ttl_s, now, then field/value pairs.
# Only the lease holder may write; its lease is renewed. incr_attempts: ARGV[5] == '1'.
_OWNER_SET = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[5] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS[1] record, KEYS[2] lease; ARGV: owner, job_id, ttl_s, now.
# Recording a job id is never refused (it is the truth), but a second id is kept as a duplicate.
_RECORD_JOB = """
local known = redis.call('HGET', KEYS[1], 'job_id')
if known and known ~= ARGV[2] then
  local dup = cjson.decode(redis.call('HGET', KEYS[1], 'duplicates') or '[]')
  table.insert(dup, ARGV[2])
  redis.call('HSET', KEYS[1], 'duplicates', cjson.encode(dup))
  return 'duplicate'
end
redis.call('HSET', KEYS[1], 'job_id', ARGV[2], 'sending', '0', 'updated_at', ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'final' then
  redis.call('HSET', KEYS[1], 'state', 'submitted')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 'ok'
"""

# KEYS[1] record; ARGV: job_id ('' = the recorded one), status, result json, ttl_s, now.
_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local known = redis.call('HGET', KEYS[1], 'job_id')
if ARGV[1] ~= '' and known and known ~= ARGV[1] then
  local dup = cjson.decode(redis.call('HGET', KEYS[1], 'duplicates') or '[]')
  table.insert(dup, ARGV[1])
  redis.call('HSET', KEYS[1], 'duplicates', cjson.encode(dup))
  return 'duplicate'
end
if redis.call('HGET', KEYS[1], 'state') == 'final' then return 'already' end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'job_id', ARGV[1]) end
redis.call('HSET', KEYS[1], 'state', 'final', 'status', ARGV[2], 'result', ARGV[3],
           'sending', '0', 'updated_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 'ok'
"""

# KEYS[1] record, KEYS[2] lease; ARGV: new state, ttl_s, now, from-states (comma list), error.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == false then return 'missing' end
local allowed = false
for s in string.gmatch(ARGV[4], '[^,]+') do if s == state then allowed = true end end
if not allowed then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[3], 'owner', '')
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 'ok'
"""


def token_digest(token: str) -> str:
    """What the ledger keeps of a webhook token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    """One key's record, decoded."""

    key: str
    state: str
    job_id: str | None = None
    status: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    sending: bool = False
    cancel_requested: bool = False
    duplicates: list[str] = field(default_factory=list)
    token_digests: list[str] = field(default_factory=list, repr=False)
    created_at: float | None = None
    updated_at: float | None = None

    @classmethod
    def from_hash(cls, key: str, h: dict[str, str]) -> Record:
        def num(name: str) -> float | None:
            return float(h[name]) if h.get(name) else None

        return cls(
            key=key,
            state=h.get("state", "unknown"),
            job_id=h.get("job_id") or None,
            status=h.get("status") or None,
            result=json.loads(h["result"]) if h.get("result") else None,
            error=h.get("error") or None,
            attempts=int(h.get("attempts") or 0),
            sending=h.get("sending") == "1",
            cancel_requested=h.get("cancel_requested") == "1",
            duplicates=json.loads(h.get("duplicates") or "[]"),
            token_digests=[d for d in (h.get("tokens") or "").split(",") if d],
            created_at=num("created_at"),
            updated_at=num("updated_at"),
        )

    def accepts_token(self, token: str) -> bool:
        """Constant-time check of a webhook's token against this key's own tokens."""
        got = token_digest(token)
        ok = False
        for digest in self.token_digests:  # every one compared: no early exit on a match
            ok |= hmac.compare_digest(got, digest)
        return ok


@dataclass(frozen=True)
class Claim:
    """What `Ledger.claim` found: `won` = this owner may submit now."""

    result: str  # claimed, taken_over, forced, stale_sending, or the record's state
    lease_left_s: float = 0.0

    @property
    def won(self) -> bool:
        return self.result in ("claimed", "taken_over", "forced")


class Ledger:
    """The submission ledger over one Redis (async client; one per event loop)."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "podfleet",
        record_ttl_s: float = 90_000,
        result_expires_s: float = 3600,
    ) -> None:
        self.redis: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.prefix = prefix
        self.record_ttl_s = int(record_ttl_s)
        self.result_expires_s = max(1, int(result_expires_s))
        self._claim = self.redis.register_script(_CLAIM)
        self._owner_set = self.redis.register_script(_OWNER_SET)
        self._record_job = self.redis.register_script(_RECORD_JOB)
        self._finish = self.redis.register_script(_FINISH)
        self._transition = self.redis.register_script(_TRANSITION)

    def __repr__(self) -> str:
        return f"Ledger(prefix={self.prefix!r})"  # the URL may hold a password

    async def aclose(self) -> None:
        await self.redis.aclose()

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:job:{key}", f"{self.prefix}:lease:{key}"]

    # --- reading --------------------------------------------------------------------------
    async def get(self, key: str) -> Record | None:
        h = await self.redis.hgetall(self._keys(key)[0])
        return Record.from_hash(key, cast("dict[str, str]", h)) if h else None

    async def get_many(self, keys: list[str]) -> list[Record | None]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._keys(key)[0])
        rows = await pipe.execute()
        return [Record.from_hash(k, h) if h else None for k, h in zip(keys, rows, strict=True)]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # --- the submitter's side -------------------------------------------------------------
    async def enqueue(self, key: str) -> bool:
        """Make the key known as `queued`; False if it already had a record."""
        rec = self._keys(key)[0]
        now = str(time.time())
        pipe = self.redis.pipeline(transaction=True)
        pipe.hsetnx(rec, "state", "queued")
        pipe.hsetnx(rec, "created_at", now)
        pipe.hsetnx(rec, "updated_at", now)
        pipe.expire(rec, self.record_ttl_s, nx=True)
        created, *_ = await pipe.execute()
        return bool(created)

    async def claim(self, key: str, owner: str, lease_s: float, *, force: bool = False) -> Claim:
        """Claim the key for `owner` for `lease_s` (SET NX semantics, atomically).

        force=True also takes a key whose last submitter died while sending (at-least-once)."""
        result = await self._claim(
            keys=self._keys(key),
            args=[owner, int(lease_s * 1000), self.record_ttl_s, time.time(), "force" * force],
        )
        left_s = 0.0
        if result == "pending":
            left_s = max(0.0, (await self.redis.pttl(self._keys(key)[1])) / 1000)
        return Claim(result, left_s)

    async def _owner_write(
        self, key: str, owner: str, lease_s: float, fields: dict[str, str], incr: bool = False
    ) -> bool:
        flat = [x for kv in fields.items() for x in kv]
        args: list[str | int | float] = [
            owner,
            int(lease_s * 1000),
            self.record_ttl_s,
            time.time(),
            "1" if incr else "0",
        ]
        return bool(await self._owner_set(keys=self._keys(key), args=[*args, *flat]))

    async def mark_sending(self, key: str, owner: str, lease_s: float, token: str | None) -> bool:
        """Before a /run try: renew the lease, count the try, remember its webhook token.
        False = the lease was lost (another submitter may own the key now): do not send."""
        fields = {"sending": "1"}
        if token is not None:
            rec = await self.get(key)
            digests = [*(rec.token_digests if rec else []), token_digest(token)]
            fields["tokens"] = ",".join(dict.fromkeys(digests))
        return await self._owner_write(key, owner, lease_s, fields, incr=True)

    async def mark_unsent(self, key: str, owner: str, lease_s: float) -> bool:
        """After a /run that certainly created no job (429, connection refused)."""
        return await self._owner_write(key, owner, lease_s, {"sending": "0"})

    async def record_job(self, key: str, owner: str, job_id: str) -> str:
        """/run answered: record its job id ('ok', or 'duplicate' if another id is recorded)."""
        return await self._record_job(
            keys=self._keys(key), args=[owner, job_id, self.record_ttl_s, time.time()]
        )

    async def release(self, key: str, owner: str) -> bool:
        """Give the claim back (nothing was sent): the key is `queued` again."""
        if await self.redis.get(self._keys(key)[1]) != owner:
            return False
        return await self.transition(key, "queued", ("pending",)) == "ok"

    async def transition(
        self, key: str, state: str, allowed_from: tuple[str, ...], error: str = ""
    ) -> str:
        """Move the record to `state` if it is in one of `allowed_from` ('ok' or its state)."""
        ttl = self.result_expires_s if state in ("rejected", "cancelled") else self.record_ttl_s
        return await self._transition(
            keys=self._keys(key), args=[state, ttl, time.time(), ",".join(allowed_from), error]
        )

    async def request_cancel(self, key: str) -> None:
        await self.redis.hset(self._keys(key)[0], "cancel_requested", "1")

    async def finish(
        self, key: str, status: str, result: dict[str, Any], job_id: str | None = None
    ) -> str:
        """The job ended: keep its result for `result_expires_s`. 'ok', 'already' (finished
        before), 'duplicate' (a different job id than the recorded one) or 'missing'."""
        return await self._finish(
            keys=self._keys(key)[:1],
            args=[job_id or "", status, json.dumps(result), self.result_expires_s, time.time()],
        )

    # --- batches --------------------------------------------------------------------------
    async def set_batch(self, batch_key: str, keys: list[str]) -> bool:
        """Remember a batch's item keys (first writer wins); False if it existed."""
        name = f"{self.prefix}:batch:{batch_key}"
        ok = await self.redis.set(name, json.dumps(keys), nx=True, ex=self.record_ttl_s)
        return bool(ok)

    async def get_batch(self, batch_key: str) -> list[str] | None:
        raw = await self.redis.get(f"{self.prefix}:batch:{batch_key}")
        return json.loads(raw) if raw else None
