"""Crawl state shared by every worker, in Redis: who queued what, robots.txt, host politeness.

Keys (``P`` is the configurable prefix, ``crawler:`` by default; tests use their own)::

    P seen                       SET     16-byte BLAKE2b digests of every URL ever queued (claimed)
    P run:{source}:{run}         SET     digests of start/list pages claimed in one scheduled run
    P budget:{source}:{run}      STRING  pages fetched in one run (sources with max_pages)
    P runs                       HASH    source id -> start (epoch seconds) of its latest run
    P run-of:{task id}           STRING  the run a crawl_source message started (retries reuse it)
    P robots:{origin}            STRING  robots.txt text of an origin ("" = allow all), with a TTL
    P robots-lock:{origin}       STRING  held (30 s at most) by the one worker downloading it
    P host:{host}:next           STRING  earliest start (Redis TIME, epoch seconds) of the next request
    P host:{host}:slots          ZSET    request leases on the host: token -> lease expiry
    P host:{host}:horizon        STRING  last turn handed to a task sent away to come back later
    P host:{host}:last           STRING  when the last request to the host actually started
    P source:{id}                STRING  Source JSON of sources not in the seeds (ad-hoc crawls)
    P starts:{digest}            STRING  deliveries of one visit not yet finished (poison guard)

Why each is shaped so:

* claiming is one ``SADD`` (atomic): of two workers finding the same link, exactly one queues it.
  Members are digests, not URLs: a fixed 16 bytes whatever the URL's length;
* politeness is two Lua scripts run on the Redis server with the Redis clock (``TIME``), so the
  workers' clocks never matter and "read next start, move it on" cannot interleave between two
  workers: ``try_start`` reserves a planned start (and a request slot), ``go`` checks and records
  the actual start right before the request is sent (a grant that needs no wait can do that
  check itself: ``try_start(go=True)``);
* every key that belongs to something that ends (a run, a lease, a robots.txt, a host's
  reservation) carries a TTL, so an idle cluster's state shrinks to the seen set and the sources.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from crawler.sources import Source

DEFAULT_PREFIX = "crawler:"
#: A run's claim set and page budget outlive any plausible run.
RUN_TTL = 2 * 24 * 3600
#: Ad-hoc sources are kept as long as someone enqueues with them (refreshed on every put).
SOURCE_TTL = 30 * 24 * 3600
#: A delivery counter forgotten after a day: a poison message is one redelivered within hours.
STARTS_TTL = 24 * 3600
#: Host reservations are kept this much longer than the reserved start (seconds).
_NEXT_GRACE = 60.0


def url_digest(url: str) -> bytes:
    """The member that stands for ``url`` in the claim sets (16 bytes)."""
    return hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# Reserve the next request start on one host, and (when ``cap`` > 0) one of its request slots.
# KEYS: next-start key, slots key, horizon key, last-start key. ARGV: delay, max_wait, cap, lease,
# token, grace, go (0/1). Returns {granted (0/1), wait seconds as a string, why} (Lua numbers
# would come back truncated to integers). When not granted nothing is reserved: the caller comes
# back in ``wait`` seconds and asks again. Callers turned away for the delay are handed
# successive turns of a virtual queue (the horizon), one delay apart, so that N waiting tasks
# come back spread over N turns instead of all at once (which would cost N re-queues per turn).
# With ``go``, a grant that needs no wait also makes _GO's check and records the actual start
# ('started'): the caller sends at once, one round trip instead of two per request.
_TRY_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local delay = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local grace = tonumber(ARGV[6])
-- A slot already held under this token was left by an earlier delivery of the same page
-- (its worker died before releasing it): this delivery takes it over.
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], ARGV[5]) and redis.call('ZCARD', KEYS[2]) >= cap then
    return {0, tostring(math.max(delay, 0.25)), 'busy'}
  end
end
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, nxt)
local wait = start - now
if wait > max_wait then
  local horizon = tonumber(redis.call('GET', KEYS[3]) or '0')
  local turn = math.max(start, horizon)
  local horizon_ttl = math.ceil((turn - now + delay + grace) * 1000)
  redis.call('SET', KEYS[3], string.format('%.6f', turn + delay), 'PX', horizon_ttl)
  return {0, tostring(turn - now), 'wait'}
end
local ttl_ms = math.ceil((wait + delay + grace) * 1000)
redis.call('SET', KEYS[1], string.format('%.6f', start + delay), 'PX', ttl_ms)
if cap > 0 then
  redis.call('ZADD', KEYS[2], string.format('%.6f', start + lease), ARGV[5])
  redis.call('PEXPIRE', KEYS[2], math.ceil((wait + lease) * 1000))
end
if ARGV[7] == '1' and wait <= 0 then
  local last = tonumber(redis.call('GET', KEYS[4]) or '0')
  if last + delay <= now then
    redis.call('SET', KEYS[4], string.format('%.6f', now), 'PX', math.ceil((delay + grace) * 1000))
    return {1, '0', 'started'}
  end
end
return {1, tostring(wait), 'ok'}
"""


# The moment a request actually starts: refuse (with the seconds left) while the host's last
# actual start is less than ``delay`` ago, else record now as the last start. Reservations space
# the planned starts; this spaces the real ones, even when a task wakes late from its sleep.
# KEYS: last-start key. ARGV: delay, grace. Returns {wait seconds, now} as strings.
_GO = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local delay = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local wait = last + delay - now
if wait > 0 then
  return {tostring(wait), string.format('%.6f', now)}
end
redis.call('SET', KEYS[1], string.format('%.6f', now), 'PX', math.ceil((delay + tonumber(ARGV[2])) * 1000))
return {'0', string.format('%.6f', now)}
"""


@dataclass(frozen=True, slots=True)
class StartGrant:
    """Answer of :meth:`CrawlState.try_start`.

    ``granted``: the request may start after sleeping ``wait`` seconds (its start is reserved,
    and a slot is held under ``token`` until :meth:`CrawlState.release`). Not granted: nothing is
    reserved; ask again in about ``wait`` seconds (``why`` is ``"wait"`` for the delay, ``"busy"``
    when the host's concurrency cap is reached). ``why`` is ``"started"`` when a grant asked
    for with ``go`` needed no wait and its actual start is recorded too (see :meth:`started`).
    """

    granted: bool
    wait: float
    token: str
    why: str

    @property
    def started(self) -> bool:
        """The request may be sent now: :meth:`CrawlState.go` was done with the grant."""
        return self.why == "started"


class RedisRobotsStore:
    """:class:`crawler.robots.SharedRobotsStore` in Redis: every worker fetches an origin's
    robots.txt once between them (per TTL).

    Single flight: when the text is missing, the first caller takes a short lock and gets None
    (so it downloads it and calls :meth:`set`); the others wait up to ``wait`` seconds for that
    text instead of downloading it too. If the holder fails (robots.txt unavailable: nothing is
    stored) the waiters give up after ``wait`` and download it themselves.
    """

    def __init__(
        self, client: redis.Redis, prefix: str = DEFAULT_PREFIX, *, wait: float = 5.0, lock_ttl: float = 30.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.wait = wait
        self.lock_ttl = lock_ttl

    def _key(self, origin: str) -> str:
        return f"{self.prefix}robots:{origin}"

    def _lock(self, origin: str) -> str:
        return f"{self.prefix}robots-lock:{origin}"

    def _read(self, origin: str) -> str | None:
        value = self.client.get(self._key(origin))
        if value is None:
            return None
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    def get(self, origin: str) -> str | None:
        text = self._read(origin)
        if text is not None:
            return text
        if self.client.set(self._lock(origin), b"1", nx=True, px=int(self.lock_ttl * 1000)):
            return None  # ours to download
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            text = self._read(origin)
            if text is not None:
                return text
            if not self.client.exists(self._lock(origin)):
                break
        return None

    def set(self, origin: str, text: str, ttl: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._key(origin), text.encode("utf-8"), px=max(1, int(ttl * 1000)))
        pipe.delete(self._lock(origin))
        pipe.execute()


class CrawlState:
    """The shared state of a crawl cluster, over one Redis client (``decode_responses=False``)."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self.robots = RedisRobotsStore(client, prefix)
        self._try_start = client.register_script(_TRY_START)
        self._go = client.register_script(_GO)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- claims (the seen set) --------------------------------------------------------------------

    def claim(self, url: str) -> bool:
        """Mark ``url`` as queued; True for exactly one caller however many race for it."""
        return bool(self.client.sadd(self.key("seen"), url_digest(url)))

    def claim_many(self, urls: Sequence[str]) -> list[bool]:
        """:meth:`claim` for many URLs in one round trip (each SADD is still atomic)."""
        return self.claim_links(urls, "", None, [])[0]

    def is_claimed(self, url: str) -> bool:
        return bool(self.client.sismember(self.key("seen"), url_digest(url)))  # type: ignore[arg-type]

    def claim_for_run(self, source_id: str, run: float, urls: Sequence[str]) -> list[bool]:
        """Claim start/list pages for one scheduled run of a source (re-visited every run).

        They go into the global seen set too, so that a first-visit claim of the same URL (a
        link found on an article) does not queue it a second time.
        """
        return self.claim_links([], source_id, run, urls)[1]

    def claim_links(
        self, urls: Sequence[str], source_id: str, run: float | None, per_run: Sequence[str]
    ) -> tuple[list[bool], list[bool]]:
        """:meth:`claim_many` of ``urls`` and :meth:`claim_for_run` of ``per_run`` (for ``run`` of
        ``source_id``), in one round trip: a page's links, whatever their kind. Each SADD is
        still atomic, so each URL is claimed by exactly one caller as before."""
        if not urls and not per_run:
            return [], []
        if per_run and run is None:
            raise ValueError("per-run claims need a run")
        seen = self.key("seen")
        pipe = self.client.pipeline(transaction=False)
        for url in urls:
            pipe.sadd(seen, url_digest(url))
        if per_run:
            assert run is not None
            run_key = self.key("run", source_id, _run_name(run))
            for url in per_run:
                digest = url_digest(url)
                pipe.sadd(run_key, digest)
                pipe.sadd(seen, digest)
            pipe.expire(run_key, RUN_TTL)
        replies = pipe.execute()
        first = [bool(n) for n in replies[: len(urls)]]
        return first, [bool(n) for n in replies[len(urls) : len(urls) + 2 * len(per_run) : 2]]

    def release_links(
        self, urls: Sequence[str], source_id: str, run: float | None, per_run: Sequence[str]
    ) -> None:
        """Undo the claims of :meth:`claim_links` that this caller won (``urls`` claimed for good,
        ``per_run`` for ``run``): their URLs were never recorded, and a claim nobody records
        would keep every later finder from queueing them."""
        if not urls and not per_run:
            return
        pipe = self.client.pipeline(transaction=False)
        if urls:
            pipe.srem(self.key("seen"), *[url_digest(url) for url in urls])
        if per_run and run is not None:
            pipe.srem(self.key("run", source_id, _run_name(run)), *[url_digest(url) for url in per_run])
        pipe.execute()

    def seen_count(self) -> int:
        return int(cast(int, self.client.scard(self.key("seen"))))

    # -- runs -------------------------------------------------------------------------------------

    def note_run(self, source_id: str, run: float) -> None:
        self.client.hset(self.key("runs"), source_id, _run_name(run))

    def last_runs(self) -> dict[str, float]:
        raw = cast(dict[bytes, bytes], self.client.hgetall(self.key("runs")))
        return {k.decode(): float(v) for k, v in raw.items()}

    def run_for_task(self, task_id: str, proposed: float) -> float:
        """The run a ``crawl_source`` message started: ``proposed`` the first time, the same run
        when the message is retried or redelivered (so its start URLs are not queued twice)."""
        key = self.key("run-of", task_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, _run_name(proposed), nx=True, ex=RUN_TTL)
        pipe.get(key)
        return float(pipe.execute()[1])

    def budget_used(self, source_id: str, run: float) -> int:
        """Pages a run has counted against its ``max_pages`` so far."""
        return int(cast(bytes, self.client.get(self.key("budget", source_id, _run_name(run)))) or 0)

    def take_budget(self, source_id: str, run: float, limit: int) -> bool:
        """Count one page against a run's ``max_pages``; False once the budget is spent."""
        key = self.key("budget", source_id, _run_name(run))
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, RUN_TTL)
        used = int(pipe.execute()[0])
        return used <= limit

    # -- host politeness --------------------------------------------------------------------------

    def try_start(
        self,
        host: str,
        *,
        delay: float,
        max_wait: float,
        cap: int = 0,
        lease: float = 300.0,
        holder: str | None = None,
        go: bool = False,
    ) -> StartGrant:
        """Reserve the start of the next request to ``host`` across all workers.

        The start is ``max(now, next)`` and ``next`` moves to ``start + delay``, atomically, on the
        Redis clock. Only granted when the wait is at most ``max_wait``, so that a task never
        reserves a start it will not keep; when refused, ``wait`` is the caller's turn in the
        host's virtual queue (successive refusals get turns one ``delay`` apart). With ``cap`` > 0
        a slot (lease of ``lease`` seconds, a bound on a crash's cost) is also taken; release it
        with :meth:`release`. ``holder`` names the slot (a page's URL): a slot its earlier
        delivery left behind when its worker was killed is taken over, instead of keeping the
        host one slot short until the lease ends (two such slots stopped a host with ``cap`` 2).
        ``go``: a grant with no wait also makes :meth:`go`'s check and records the start when it
        passes (``started``), in the same atomic call; otherwise call :meth:`go` as usual.
        """
        token = url_digest(holder).hex() if holder is not None else uuid.uuid4().hex
        reply = self._try_start(
            keys=[
                self._host_key(host, "next"),
                self._host_key(host, "slots"),
                self._host_key(host, "horizon"),
                self._host_key(host, "last"),
            ],
            args=[
                repr(float(delay)),
                repr(float(max_wait)),
                int(cap),
                repr(float(lease)),
                token,
                _NEXT_GRACE,
                1 if go else 0,
            ],
        )
        granted, wait, why = cast(list[Any], reply)
        return StartGrant(bool(int(granted)), max(0.0, float(wait)), token, _text(why))

    def go(self, host: str, *, delay: float) -> tuple[float, float]:
        """Mark a request to ``host`` as starting now, if its last actual start is at least
        ``delay`` ago: returns ``(0, now)``; else ``(seconds left, now)`` and nothing changes.
        ``now`` is the Redis clock (epoch seconds). Call it right before sending, after the
        reserved wait: it makes the spacing of real starts exact however late a sleeper wakes."""
        wait, now = cast(
            list[Any], self._go(keys=[self._host_key(host, "last")], args=[repr(float(delay)), _NEXT_GRACE])
        )
        return max(0.0, float(wait)), float(now)

    def reserve(self, host: str, *, delay: float, go: bool = False) -> StartGrant:
        """Reserve the next start on ``host`` unconditionally (a redirect hop already under way);
        the grant's ``wait`` is the seconds to sleep before it (``go``: see :meth:`try_start`)."""
        return self.try_start(host, delay=delay, max_wait=float("inf"), go=go)

    def release(self, host: str, token: str) -> None:
        """Give back the request slot taken by a granted :meth:`try_start`."""
        self.client.zrem(self._host_key(host, "slots"), token)

    def _host_key(self, host: str, what: str) -> str:
        # The braces are a cluster hash tag: both keys of a host live on one node.
        return f"{self.prefix}host:{{{host}}}:{what}"

    # -- sources that are not in the seeds --------------------------------------------------------

    def put_source(self, source: Source) -> None:
        """Publish a source (ad-hoc start URLs, or a seed the workers may not have)."""
        self.client.set(self.key("source", source.id), source.model_dump_json().encode(), ex=SOURCE_TTL)

    def get_source(self, source_id: str) -> Source | None:
        raw = self.client.get(self.key("source", source_id))
        if raw is None:
            return None
        return Source.model_validate_json(cast(bytes, raw))

    # -- poison-message guard ---------------------------------------------------------------------

    def start_delivery(self, url: str) -> int:
        """Count a visit's start; the count is how many deliveries did not finish, this one included.

        A page that kills its worker process (a C-level crash, the memory guard) is redelivered
        by ``task_reject_on_worker_lost``; counting starts without finishes lets the task give
        up on it instead of killing workers forever.
        """
        key = self.key("starts", url_digest(url).hex())
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, STARTS_TTL)
        return int(pipe.execute()[0])

    def finish_delivery(self, url: str) -> None:
        self.client.delete(self.key("starts", url_digest(url).hex()))

    # -- housekeeping -----------------------------------------------------------------------------

    def all_keys(self) -> list[str]:
        """Every key under the prefix (SCAN, never KEYS)."""
        return sorted(_text(k) for k in self.client.scan_iter(match=self.prefix + "*", count=1000))

    def memory_usage(self) -> dict[str, int]:
        """Bytes used by each key under the prefix (Redis ``MEMORY USAGE``)."""
        usage: dict[str, int] = {}
        for key in self.all_keys():
            size = self.client.memory_usage(key, samples=0)
            usage[key] = int(cast(int, size or 0))
        return usage

    def clear(self) -> int:
        """Delete every key under the prefix (tests, and starting a crawl from scratch)."""
        keys = self.all_keys()
        deleted = 0
        for start in range(0, len(keys), 500):
            deleted += int(cast(int, self.client.delete(*keys[start : start + 500])))
        return deleted


def _run_name(run: float) -> str:
    # Millisecond resolution names a run; the float travels in messages as JSON.
    return f"{run:.3f}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str, *, timeout: float = 10.0) -> redis.Redis:
    """A Redis client for the crawl state (bytes in, bytes out)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 5.0),
        health_check_interval=30,
    )


def iter_chunks(items: Iterable[str], size: int) -> Iterable[list[str]]:
    """Fixed-size batches, for pipelining long lists."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
