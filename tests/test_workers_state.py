"""The shared crawl state on the real Redis: claims, the Lua throttle, slots, robots, sources.

Uses Redis database 15 (flushed before and after each test)."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from crawler.sources import Source
from tests.cluster import isolated_redis, redis_db_url
from workers.state import CrawlState, RedisRobotsStore, connect

pytestmark = pytest.mark.services

DB = 15
PREFIX = "t:"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    with isolated_redis(DB) as c:
        yield c


@pytest.fixture
def state(client: redis.Redis) -> CrawlState:
    return CrawlState(client, PREFIX)


# -- claims ---------------------------------------------------------------------------------------


def test_each_url_is_claimed_exactly_once_under_a_race(state: CrawlState) -> None:
    urls = [f"http://h{i % 7}.test/page/{i}" for i in range(400)]
    wins: list[list[str]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def racer(index: int) -> None:
        mine = CrawlState(connect(redis_db_url(DB)), PREFIX)
        order = urls[:]
        random.Random(index).shuffle(order)
        barrier.wait()
        for start in range(0, len(order), 50):
            batch = order[start : start + 50]
            wins[index] += [u for u, ok in zip(batch, mine.claim_many(batch), strict=True) if ok]

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    claimed = [u for won in wins for u in won]
    assert sorted(claimed) == sorted(urls)  # every URL once, none twice
    assert state.seen_count() == len(urls)
    assert not state.claim(urls[0]) and state.is_claimed(urls[0])


def test_run_claims_revisit_pages_once_per_run(state: CrawlState) -> None:
    pages = ["http://a.test/", "http://a.test/list/2"]
    assert state.claim_for_run("src", 100.0, pages) == [True, True]
    assert state.claim_for_run("src", 100.0, pages) == [False, False]
    # The next run visits them again; a first-visit claim of them is already taken.
    assert state.claim_for_run("src", 200.0, pages) == [True, True]
    assert not state.claim(pages[0])
    assert state.client.ttl(f"{PREFIX}run:src:100.000") > 0


def _claim_links_racer(url: str, prefix: str, links: list[str], lists: list[str], seed: int) -> list[str]:
    """One worker process claiming pages' links the way ``ClusterPorts.follow`` does: a page's
    articles and list pages in one round trip, pages in a shuffled order."""
    mine = CrawlState(connect(url), prefix)
    rng = random.Random(seed)
    won: list[str] = []
    for _ in range(40):  # 40 pages, each linking a random handful of articles and list pages
        first, per_run = rng.sample(links, 12), rng.sample(lists, 3)
        got_first, got_run = mine.claim_links(first, "src", 100.0, per_run)
        won += [u for u, ok in zip(first, got_first, strict=True) if ok]
        won += [u for u, ok in zip(per_run, got_run, strict=True) if ok]
    return won


def test_a_pages_links_claimed_in_one_round_trip_are_each_claimed_once_across_processes(
    state: CrawlState,
) -> None:
    links = [f"http://a.test/art/{i}" for i in range(120)]
    lists = [f"http://a.test/list/{i}" for i in range(10)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(_claim_links_racer, (redis_db_url(DB), PREFIX, links, lists, seed))
            for seed in range(4)
        ]
        won = [u for r in results for u in r.get(timeout=60)]
    assert len(won) == len(set(won))  # none twice
    assert set(won) <= set(links + lists)
    # Whatever was claimed is claimed for good (articles) or for this run (list pages).
    assert all(not state.claim(u) for u in won)
    assert all(state.claim_for_run("src", 100.0, [u]) == [False] for u in set(won) & set(lists))
    assert state.client.ttl(f"{PREFIX}run:src:100.000") > 0
    # The pipeline's replies are split right: mixed claims, some taken, in order.
    fresh, taken = "http://a.test/new", won[0]
    claimed = state.claim_links([fresh, taken], "src", 200.0, [lists[0], "http://a.test/l"])
    assert claimed == ([True, False], [True, True])  # a new run re-claims list pages
    assert state.claim_links([], "src", None, []) == ([], [])
    with pytest.raises(ValueError):
        state.claim_links([], "src", None, ["http://a.test/x"])


def test_budget_counts_pages_of_one_run(state: CrawlState) -> None:
    assert [state.take_budget("src", 1.0, 2) for _ in range(3)] == [True, True, False]
    assert state.take_budget("src", 2.0, 2)


# -- the throttle ---------------------------------------------------------------------------------


def test_reservations_space_request_starts_by_the_delay(state: CrawlState) -> None:
    first = state.try_start("h.test", delay=0.3, max_wait=1.0)
    second = state.try_start("h.test", delay=0.3, max_wait=1.0)
    assert first.granted and first.wait == 0
    assert second.granted and 0.25 < second.wait <= 0.3
    # Too long a wait: refused, and nothing reserved; successive refusals are told to come back
    # one delay apart (turns of a virtual queue), not all at the same moment.
    refused = state.try_start("h.test", delay=0.3, max_wait=0.1)
    again = state.try_start("h.test", delay=0.3, max_wait=0.1)
    assert not refused.granted and refused.why == "wait"
    assert 0.5 < refused.wait <= 0.6
    assert abs(again.wait - refused.wait - 0.3) < 0.05
    # The turns reserved nothing: the next real start is still right after the second grant.
    assert 0.5 < state.try_start("h.test", delay=0.3, max_wait=1.0).wait <= 0.6
    # Other hosts do not wait for this one.
    assert state.try_start("other.test", delay=0.3, max_wait=0.0).granted


def _hammer(
    url: str, prefix: str, host: str, delay: float, count: int, out: list[float] | None, go: bool = False
) -> list[float]:
    """Take ``count`` turns on ``host`` the way the task does: sleep short waits, back off long
    ones; with ``go``, a grant with no wait is the start (recorded by the grant itself)."""
    state = CrawlState(connect(url), prefix)
    starts: list[float] = []
    while len(starts) < count:
        before = _redis_now(state)
        grant = state.try_start(host, delay=delay, max_wait=0.1, cap=0, go=go)
        if not grant.granted:
            time.sleep(min(grant.wait, 0.2) * random.uniform(0.5, 1.0))
            continue
        if grant.started:
            # Recorded on the Redis clock inside the call: ``last`` holds the start.
            starts.append(float(state.client.get(f"{prefix}host:{{{host}}}:last") or 0))
            assert starts[-1] >= before
            continue
        time.sleep(grant.wait)
        while True:  # the final check the task makes right before sending
            wait, now = state.go(host, delay=delay)
            if wait <= 0:
                break
            time.sleep(wait)
        starts.append(now)  # the Redis clock: one clock for every process
    if out is not None:
        out.extend(starts)
    return starts


def _redis_now(state: CrawlState) -> float:
    seconds, micros = state.client.time()
    return float(seconds) + float(micros) / 1e6


@pytest.mark.parametrize("go", [False, True], ids=["go-after-grant", "started-by-grant"])
def test_throttle_spaces_starts_across_processes_and_threads(state: CrawlState, go: bool) -> None:
    delay, per_worker = 0.05, 6
    url = redis_db_url(DB)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(_hammer, (url, PREFIX, "busy.test", delay, per_worker, None, go))
            for _ in range(2)
        ]
        thread_starts: list[float] = []
        threads = [
            threading.Thread(
                target=_hammer, args=(url, PREFIX, "busy.test", delay, per_worker, thread_starts, go)
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        starts = [s for r in results for s in r.get(timeout=60)]
        for thread in threads:
            thread.join(timeout=60)
    starts = sorted(starts + thread_starts)
    assert len(starts) == 4 * per_worker
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= delay - 1e-5, gaps  # exact: late sleepers make the next one wait
    assert starts[-1] - starts[0] < delay * len(starts) * 3  # and not needlessly slow


def test_go_spaces_actual_starts_even_after_a_late_wake_up(state: CrawlState) -> None:
    # Two reservations 0.2 s apart; the first sender wakes up 0.15 s late.
    first = state.try_start("late.test", delay=0.2, max_wait=1.0)
    second = state.try_start("late.test", delay=0.2, max_wait=1.0)
    time.sleep(first.wait + 0.15)
    assert state.go("late.test", delay=0.2)[0] == 0
    time.sleep(max(0.0, second.wait - 0.15))
    wait, _ = state.go("late.test", delay=0.2)
    assert 0.1 < wait <= 0.2  # the second must still wait for a full delay after the first
    time.sleep(wait)
    assert state.go("late.test", delay=0.2)[0] == 0


def test_a_grant_with_go_records_the_start_only_when_it_needs_no_wait(state: CrawlState) -> None:
    first = state.try_start("go.test", delay=0.2, max_wait=1.0, go=True)
    assert first.granted and first.started and first.wait == 0
    # The start is recorded: a sender that did not go with its grant must wait a full delay.
    assert 0.1 < state.go("go.test", delay=0.2)[0] <= 0.2
    # A grant that must wait is not started: its sender sleeps, then goes as before.
    second = state.try_start("go.test", delay=0.2, max_wait=1.0, go=True)
    assert second.granted and not second.started and 0.1 < second.wait <= 0.2
    time.sleep(second.wait)
    assert state.go("go.test", delay=0.2)[0] == 0
    # The next reserved start is due, but the last actual start was just now: not started.
    state.client.delete(f"{PREFIX}host:{{go.test}}:next")
    third = state.try_start("go.test", delay=0.2, max_wait=1.0, go=True)
    assert third.granted and not third.started and third.wait == 0
    assert state.go("go.test", delay=0.2)[0] > 0.1
    # Without go nothing changes: the grant never records the start.
    time.sleep(0.25)
    plain = state.try_start("plain.test", delay=0.2, max_wait=1.0)
    assert plain.granted and not plain.started and state.go("plain.test", delay=0.2)[0] == 0
    # A redirect hop's reservation (always granted) goes the same way.
    hop = state.reserve("go.test", delay=0.2, go=True)
    assert hop.granted and hop.started and hop.wait == 0
    hop = state.reserve("go.test", delay=0.2, go=True)
    assert hop.granted and not hop.started and 0.1 < hop.wait <= 0.2


def test_concurrency_cap_and_leases(state: CrawlState) -> None:
    a = state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=30)
    b = state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=30)
    c = state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=30)
    assert a.granted and b.granted
    assert not c.granted and c.why == "busy"
    state.release("cap.test", a.token)
    assert state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=0.2).granted
    # A lease a crashed worker never released expires on its own.
    state.release("cap.test", b.token)
    assert state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=0.2).granted
    assert not state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=0.2).granted
    time.sleep(0.3)
    assert state.try_start("cap.test", delay=0, max_wait=1, cap=2, lease=0.2).granted


def test_a_redelivered_page_takes_over_the_slot_its_killed_delivery_left(state: CrawlState) -> None:
    # Two deliveries killed mid-fetch (never released): the host is full for everyone else...
    killed = [
        state.try_start("held.test", delay=0, max_wait=1, cap=2, lease=30, holder=f"http://held.test/{n}")
        for n in (1, 2)
    ]
    assert all(grant.granted for grant in killed)
    other = state.try_start("held.test", delay=0, max_wait=1, cap=2, lease=30, holder="http://held.test/3")
    assert not other.granted and other.why == "busy"
    # ...but not for the redelivered pages themselves, which take over their own slots.
    again = state.try_start("held.test", delay=0, max_wait=1, cap=2, lease=30, holder="http://held.test/1")
    assert again.granted and again.token == killed[0].token
    state.release("held.test", again.token)
    assert state.try_start(
        "held.test", delay=0, max_wait=1, cap=2, lease=30, holder="http://held.test/3"
    ).granted


def test_throttle_keys_expire(state: CrawlState, client: redis.Redis) -> None:
    state.try_start("ttl.test", delay=1.0, max_wait=1.0, cap=1, lease=5)
    for key in state.all_keys():
        assert client.pttl(key) > 0, key


# -- robots, sources, deliveries ------------------------------------------------------------------


def test_robots_store(client: redis.Redis) -> None:
    store = RedisRobotsStore(client, PREFIX)
    assert store.get("http://a.test") is None
    store.set("http://a.test", "User-agent: *\nDisallow: /private/\n", 60)
    store.set("http://b.test", "", 60)  # "no robots.txt": allow all
    assert store.get("http://a.test") == "User-agent: *\nDisallow: /private/\n"
    assert store.get("http://b.test") == ""
    assert 0 < client.pttl(f"{PREFIX}robots:http://a.test") <= 60_000


def test_sources_round_trip(state: CrawlState) -> None:
    source = Source.from_urls(["http://a.test/x", "http://b.test:8080/"], id="adhoc-123")
    state.put_source(source)
    assert state.get_source("adhoc-123") == source
    assert state.get_source("nope") is None


def test_unfinished_deliveries_are_counted(state: CrawlState) -> None:
    url = "http://a.test/crash"
    assert state.start_delivery(url) == 1
    assert state.start_delivery(url) == 2  # the first never finished (its worker died)
    state.finish_delivery(url)
    assert state.start_delivery(url) == 1


def test_memory_usage_and_clear(state: CrawlState, client: redis.Redis) -> None:
    state.claim_many([f"http://a.test/{i}" for i in range(100)])
    client.set("other", "kept")
    usage = state.memory_usage()
    assert set(usage) == {f"{PREFIX}seen"} and usage[f"{PREFIX}seen"] > 100 * 16
    assert state.clear() == 1
    assert state.all_keys() == [] and client.get("other") == b"kept"


def test_robots_txt_is_downloaded_once_between_workers(client: redis.Redis) -> None:
    """Of several workers missing an origin's robots.txt at once, one downloads it; the others
    wait for its text instead of downloading it too."""
    downloads: list[int] = []
    results: list[str | None] = []
    barrier = threading.Barrier(4)

    def worker(index: int) -> None:
        store = RedisRobotsStore(connect(redis_db_url(DB)), PREFIX, wait=5.0)
        barrier.wait()
        text = store.get("http://r.test")
        if text is None:  # ours to download
            downloads.append(index)
            time.sleep(0.3)
            text = "User-agent: *\nDisallow: /x/\n"
            store.set("http://r.test", text, 60)
        results.append(text)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(downloads) == 1
    assert results == ["User-agent: *\nDisallow: /x/\n"] * 4
    assert not client.exists(f"{PREFIX}robots-lock:http://r.test")


def test_waiters_download_themselves_when_the_holder_fails(client: redis.Redis) -> None:
    first = RedisRobotsStore(client, PREFIX, wait=0.3)
    assert first.get("http://down.test") is None  # takes the lock, then never sets (503)
    began = time.monotonic()
    assert RedisRobotsStore(client, PREFIX, wait=0.3).get("http://down.test") is None
    assert 0.25 <= time.monotonic() - began < 2


def test_released_claims_can_be_won_again_and_others_stay(state: CrawlState) -> None:
    kept, released, listing = "http://a.test/kept", "http://a.test/gone", "http://a.test/list"
    assert state.claim_links([kept, released], "src", 300.0, [listing]) == ([True, True], [True])
    state.release_links([released], "src", 300.0, [listing])
    assert not state.is_claimed(released) and state.is_claimed(kept)
    assert state.claim_links([released, kept], "src", 300.0, [listing]) == ([True, False], [True])
    state.release_links([], "src", None, [])  # nothing to give back: no round trip, no error
