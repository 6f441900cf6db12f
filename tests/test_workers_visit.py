"""One page visit as the task runs it, in this process: real Redis (database 12), a fresh
PostgreSQL schema, a local site, and the messages it queues read back from the real broker list.

What the cluster test cannot show cheaply: a visit delivered again is skipped, retries end in
``failed_transient``, permanent failures are recorded once, a busy host sends the task away
instead of holding the worker, page budgets are resumed by the next run, start pages are
re-visited by every run.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from crawler.samplesite import (
    ARTICLES,
    Response,
    RunningSite,
    SampleWeb,
    html,
    not_found,
    redirect,
    serve_site,
    server_error,
)
from crawler.sources import Source
from settings import Settings
from storage import UrlStatus, open_store
from tests.cluster import isolated_redis, redis_db_url
from workers.app import WorkerConfig, make_app
from workers.routing import CRAWL_QUEUE
from workers.tasks import Runtime, Visit, start_run, visit_page

pytestmark = pytest.mark.services

DB = 12
ARTICLE_TEXT = "\n".join(f"<p>{p}</p>" for p in ARTICLES[0].paragraphs)


def _page(title: str, links: Sequence[str] = (), text: str = "") -> Response:
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return html(
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{text}{anchors}</body></html>"
    )


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    web = SampleWeb()
    web.add_site("t", disallow=("/private/",))
    web.add_routes(
        "t",
        {
            "/": _page("home", ["/a.html", "/b.html", "/private/x.html", "/list.html"]),
            "/list.html": _page("list", ["/a.html"]),
            "/a.html": _page("a", text=ARTICLE_TEXT),
            "/b.html": _page("b", text=ARTICLE_TEXT.replace("。", "！")),
            "/boom": server_error(503),
            "/missing": not_found(),
            "/moved": redirect("/a.html"),
        },
    )
    with serve_site(web) as running:
        yield running


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    with isolated_redis(DB) as c:
        yield c


@pytest.fixture
def runtime(
    pg_url: str, client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(tmp_path))  # no seeds: sources come from Redis
    settings = Settings(
        database_url=pg_url, redis_url=redis_db_url(DB), allowed_networks=["127.0.0.0/8"], per_host_delay=0.0
    )
    rt = Runtime(settings, sender=make_app(WorkerConfig.from_settings(settings)))
    try:
        yield rt
    finally:
        rt.close()


def _source(site: RunningSite, **fields: Any) -> Source:
    values: dict[str, Any] = {
        "id": "t",
        "name": "t",
        "start_urls": [site.url("t", "/")],
        "list_patterns": [r"/list\.html$"],
        "article_patterns": [r"/([ab]|private/x)\.html$", "/boom$", "/missing$"],
        "max_depth": 2,
    }
    values.update(fields)
    return Source.model_validate(values)


def _publish(rt: Runtime, source: Source) -> Source:
    rt.state.put_source(source)
    return source


def _visit(rt: Runtime, url: str, *, retried: bool = False, redelivered: bool = False, **fields: Any) -> str:
    visit = Visit(url, fields.pop("source_id", "t"), fields.pop("depth", 0), **fields)
    return rt.run(visit_page(rt, visit, retried=retried, redelivered=redelivered)).status


def _queued(client: redis.Redis) -> list[tuple[list[Any], dict[str, Any]]]:
    """The fetch_page messages waiting in the broker's crawl queue: (args, kwargs)."""
    out = []
    for raw in client.lrange(CRAWL_QUEUE, 0, -1):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((args, kwargs))
    return out


def _requests(site: RunningSite, path: str) -> int:
    return sum(1 for r in site.request_log.snapshot() if r.path == path)


def test_a_visit_delivered_again_is_skipped(runtime: Runtime, site: RunningSite, client: redis.Redis) -> None:
    _publish(runtime, _source(site))
    site.request_log.clear()
    home = site.url("t", "/")
    assert _visit(runtime, home) == "fetched"
    children = {args[0] for args, _ in _queued(client)}
    # In-scope links are queued once; the robots-disallowed one too (it is recorded as such).
    assert children == {site.url("t", p) for p in ("/a.html", "/b.html", "/list.html", "/private/x.html")}
    assert _visit(runtime, home) == "skipped"
    assert _requests(site, "/") == 1
    assert len(_queued(client)) == len(children)  # nothing queued twice
    assert _visit(runtime, site.url("t", "/private/x.html"), depth=1) == "disallowed"
    assert _requests(site, "/private/x.html") == 0


def test_a_document_and_its_duplicate(runtime: Runtime, site: RunningSite) -> None:
    _publish(runtime, _source(site))
    a = site.url("t", "/a.html")
    assert _visit(runtime, a, depth=1) == "fetched"
    with open_store(runtime.settings.database_url) as store:
        state = store.get_url(a)
        assert state is not None and state.content_hash
        assert store.get_document(state.content_hash) is not None


def test_transient_failures_retry_then_end_failed_transient(runtime: Runtime, site: RunningSite) -> None:
    _publish(runtime, _source(site))
    boom = site.url("t", "/boom")
    last = runtime.policy.max_retries
    assert _visit(runtime, boom, depth=1) == "retry"
    with open_store(runtime.settings.database_url) as store:
        waiting = store.get_url(boom)
    assert waiting is not None and waiting.status == UrlStatus.QUEUED and waiting.error_reason == "http_503"
    assert _visit(runtime, boom, depth=1, attempt=last) == "failed"
    with open_store(runtime.settings.database_url) as store:
        failed = store.get_url(boom)
    assert failed is not None and failed.status == UrlStatus.FAILED_TRANSIENT
    assert (failed.error_reason, failed.http_status, failed.attempts) == ("http_503", 503, last + 1)


def test_permanent_failures_are_recorded_once(runtime: Runtime, site: RunningSite) -> None:
    _publish(runtime, _source(site))
    missing = site.url("t", "/missing")
    site.request_log.clear()
    assert _visit(runtime, missing, depth=1) == "failed"
    assert _visit(runtime, missing, depth=1) == "skipped"
    assert _requests(site, "/missing") == 1
    with open_store(runtime.settings.database_url) as store:
        state = store.get_url(missing)
    assert state is not None and (state.status, state.error_reason) == (
        UrlStatus.FAILED_PERMANENT,
        "http_404",
    )


def test_a_busy_host_sends_the_task_away(runtime: Runtime, site: RunningSite) -> None:
    _publish(runtime, _source(site, per_host_delay=5.0))
    began = time.monotonic()
    assert _visit(runtime, site.url("t", "/a.html"), depth=1) == "fetched"
    result = runtime.run(visit_page(runtime, Visit(site.url("t", "/b.html"), "t", 1)))
    assert result.status == "deferred"
    assert 4.5 < result.countdown <= 5.0
    assert time.monotonic() - began < 2  # the worker was not held for the 5 s


def test_page_budget_is_resumed_by_the_next_run(
    runtime: Runtime, site: RunningSite, client: redis.Redis
) -> None:
    _publish(runtime, _source(site, max_pages=1))
    run = time.time()
    a, b = site.url("t", "/a.html"), site.url("t", "/b.html")
    assert _visit(runtime, a, depth=1, run=run) == "fetched"
    assert _visit(runtime, b, depth=1, run=run) == "over_budget"
    with open_store(runtime.settings.database_url) as store:
        left = store.get_url(b)
    assert left is not None and (left.status, left.error_reason) == (UrlStatus.QUEUED, "over_budget")
    client.delete(CRAWL_QUEUE)
    summary = start_run(runtime, "t")
    assert summary["queued"] == 1 and summary["resumed"] == 1
    queued = {args[0]: kwargs for args, kwargs in _queued(client)}
    assert set(queued) == {site.url("t", "/"), b}
    assert queued[b]["revisit"] and queued[b]["run"] == summary["run"]
    # The same run started again (a redelivered crawl_source) queues nothing more.
    assert start_run(runtime, "t", run=summary["run"]) == {**summary, "queued": 0, "resumed": 0}


def _make_due(rt: Runtime, *urls: str) -> None:
    """Move the URLs' next visit into the past, as if their interval had passed."""
    with open_store(rt.settings.database_url) as store:
        states = [store.get_url(url) for url in urls]
        for state in states:
            assert state is not None and state.next_visit_at is not None
            state.next_visit_at = datetime.now(UTC) - timedelta(seconds=1)
        store.record_urls([s for s in states if s is not None])


def test_runs_revisit_pages_when_their_next_visit_has_come(
    runtime: Runtime, site: RunningSite, client: redis.Redis
) -> None:
    _publish(runtime, _source(site))
    site.request_log.clear()
    home, listing, article = site.url("t", "/"), site.url("t", "/list.html"), site.url("t", "/a.html")
    first = time.time()
    assert _visit(runtime, home, run=first, revisit=True) == "fetched"
    assert _visit(runtime, home, run=first, revisit=True) == "skipped"  # same run: done
    # The list page was claimed for the run; the articles for good.
    kinds = {args[0]: kwargs["revisit"] for args, kwargs in _queued(client)}
    assert kinds[listing] is True and kinds[article] is False
    assert _visit(runtime, listing, depth=1, run=first, revisit=True) == "fetched"
    assert _visit(runtime, article, depth=1, run=first) == "fetched"
    with open_store(runtime.settings.database_url) as store:
        page, story = store.get_url(listing), store.get_url(article)
    assert page is not None and page.revisit_interval == 3600 and page.next_visit_at is not None
    assert story is not None and story.revisit_interval == 7 * 86400
    client.delete(CRAWL_QUEUE)

    # A run before anything is due queues its start page only (every run visits it).
    assert start_run(runtime, "t")["queued"] == 1 and [a[0] for a, _ in _queued(client)] == [home]
    client.delete(CRAWL_QUEUE)
    # Due: the run queues the start page and the list page; a re-visit asks conditionally.
    _make_due(runtime, listing)
    summary = start_run(runtime, "t")
    assert (summary["queued"], summary["resumed"]) == (1, 1)
    assert {args[0] for args, _ in _queued(client)} == {home, listing}
    assert _visit(runtime, home, run=summary["run"], revisit=True) == "not_modified"
    assert [r.status for r in site.request_log.snapshot() if r.path == "/"] == [200, 304]
    with open_store(runtime.settings.database_url) as store:
        again = store.get_url(home)
    assert again is not None and again.status == UrlStatus.NOT_MODIFIED
    assert again.revisit_interval == 2 * 3600  # unchanged: visited half as often
    assert again.content_hash is not None and again.etag is not None


def test_a_changed_article_is_stored_as_its_next_version(
    runtime: Runtime, site: RunningSite, client: redis.Redis
) -> None:
    _publish(runtime, _source(site))
    article = site.url("t", "/b.html")
    assert _visit(runtime, article, depth=1) == "fetched"
    original = site.web.sites["t"].lookup("/b.html")
    assert original is not None
    notice = "<p>补充通知：申报截止日期延长至十二月三十一日，请各单位及时提交材料。</p>"
    edited = ARTICLE_TEXT.replace("。", "！") + notice
    site.web.add_route("t", "/b.html", _page("b", text=edited))
    try:
        _make_due(runtime, article)
        summary = start_run(runtime, "t")
        assert article in {args[0] for args, _ in _queued(client)}
        assert _visit(runtime, article, depth=1, run=summary["run"], revisit=True) == "fetched"
    finally:
        site.web.add_route("t", "/b.html", original[1])
    with open_store(runtime.settings.database_url) as store:
        versions = [d for d in store.iter_documents() if d.url == article]
        latest = list(store.iter_documents(latest_only=True))
        state = store.get_url(article)
    assert [(d.version, d.previous_version) for d in versions] == [(1, None), (2, versions[0].content_hash)]
    latest_hashes = {d.content_hash for d in latest}
    assert "十二月三十一日" in versions[1].text and versions[1].content_hash in latest_hashes
    assert versions[0].content_hash not in latest_hashes
    # Changed: visited twice as often (within the source's bounds).
    assert state is not None and state.revisit_interval == 7 * 86400 / 2


def test_unknown_source_is_recorded(runtime: Runtime, site: RunningSite) -> None:
    url = site.url("t", "/a.html")
    assert _visit(runtime, url, source_id="nowhere") == "unknown_source"
    with open_store(runtime.settings.database_url) as store:
        state = store.get_url(url)
    assert state is not None and state.error_reason == "unknown_source"


def test_queued_urls_are_recorded_and_a_run_resends_those_the_broker_lost(
    runtime: Runtime, site: RunningSite, client: redis.Redis
) -> None:
    _publish(runtime, _source(site))
    home, article = site.url("t", "/"), site.url("t", "/a.html")
    assert _visit(runtime, home, run=time.time(), revisit=True) == "fetched"
    with open_store(runtime.settings.database_url) as store:
        queued = store.get_url(article)
    # The database knows the URL was sent, before any worker visits it.
    assert queued is not None and (queued.status, queued.depth) == (UrlStatus.QUEUED, 1)
    client.delete(CRAWL_QUEUE)
    # The broker still holds the claim: a new run does not send the URL a second time.
    assert start_run(runtime, "t")["resumed"] == 0 and article not in {a[0] for a, _ in _queued(client)}
    # Redis restarted without persistence: messages and claims are gone; the run sends it again.
    client.flushdb()
    _publish(runtime, _source(site))
    summary = start_run(runtime, "t")
    assert article in {args[0] for args, _ in _queued(client)} and summary["resumed"] >= 1
    assert _visit(runtime, article, depth=1) == "fetched"
    with open_store(runtime.settings.database_url) as store:
        visited = store.get_url(article)
    assert visited is not None and visited.status == UrlStatus.FETCHED


def test_a_page_that_keeps_killing_its_worker_is_recorded_not_retried_forever(
    runtime: Runtime, site: RunningSite
) -> None:
    """A page whose visit never finishes (its worker process dies each time: a C-level crash
    in extraction, the out-of-memory killer) is delivered again by task_reject_on_worker_lost;
    the redeliveries that started and never finished are counted in Redis (the first delivery
    is not: its redelivery counts it), and past ``max_deliveries`` the visit gives up and
    records the page instead of fetching it again."""
    _publish(runtime, _source(site))
    url = site.url("t", "/b.html")
    site.request_log.clear()
    # The first delivery died uncounted; the redeliveries that died after it counted themselves.
    for _ in range(runtime.config.max_deliveries - 1):
        runtime.state.start_delivery(url)
    assert _visit(runtime, url, depth=1, attempt=0, redelivered=True) == "worker_lost"
    assert _requests(site, "/b.html") == 0
    with open_store(runtime.settings.database_url) as store:
        state = store.get_url(url)
    assert state is not None and state.status == UrlStatus.FAILED_PERMANENT
    assert state.error_reason == "worker_lost"
    # A delivery that finishes clears the count: one crash is not held against a page forever.
    other = site.url("t", "/a.html")
    runtime.state.start_delivery(other)
    runtime.state.finish_delivery(other)
    assert _visit(runtime, other, depth=1) == "fetched"


def test_only_redeliveries_are_counted_and_one_short_of_the_limit_still_visits(
    runtime: Runtime, site: RunningSite, client: redis.Redis
) -> None:
    """The poison guard's count costs a first delivery nothing (no Redis key is written), and
    a redelivery that finishes leaves no count behind; at ``max_deliveries`` deliveries (the
    first and the redeliveries, this one included) the page is still visited."""
    _publish(runtime, _source(site))
    first, again = site.url("t", "/a.html"), site.url("t", "/b.html")
    assert _visit(runtime, first, depth=1) == "fetched"
    assert not [k for k in client.scan_iter(match="*starts:*")]
    for _ in range(runtime.config.max_deliveries - 2):  # redeliveries that died too
        runtime.state.start_delivery(again)
    assert _visit(runtime, again, depth=1, redelivered=True) == "fetched"
    assert not [k for k in client.scan_iter(match="*starts:*")]


def _visit_while_the_store_fails(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, method: str, url: str, **fields: Any
) -> None:
    """Visit ``url`` with the store's ``method`` failing as PostgreSQL down would: the visit
    raises StorageError (the task shell retries it)."""
    from storage import StorageError

    def down(*_: object, **__: object) -> None:
        raise StorageError(f"{method} failed: the database is down")

    with monkeypatch.context() as patched:
        patched.setattr(type(rt.store), method, down)
        with pytest.raises(StorageError):
            _visit(rt, url, **fields)


def test_a_retried_visit_sends_the_links_an_outage_kept_it_from_queueing(
    runtime: Runtime, site: RunningSite, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails after the page's links were claimed in Redis and before they were
    recorded and sent (PostgreSQL down): the task is retried, and the retry must send them,
    although Redis says they were claimed already."""
    _publish(runtime, _source(site))
    home, article = site.url("t", "/"), site.url("t", "/a.html")
    _visit_while_the_store_fails(runtime, monkeypatch, "add_queued", home, run=time.time(), revisit=True)
    # nothing sent, and the claims went back with the record that failed
    assert _queued(client) == [] and not runtime.state.is_claimed(article)
    assert _visit(runtime, home, run=time.time(), revisit=True, retried=True) == "fetched"
    assert article in {args[0] for args, _ in _queued(client)}
    with open_store(runtime.settings.database_url) as store:
        queued = store.get_url(article)
    assert queued is not None and queued.status == UrlStatus.QUEUED


def test_links_an_outage_kept_from_being_recorded_are_queued_by_the_next_page_that_finds_them(
    runtime: Runtime, site: RunningSite, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page whose links failed to be recorded may never follow them again (its retry finds
    it stored by another delivery and is skipped): another page linking them, on a first
    delivery, must queue them."""
    _publish(runtime, _source(site))
    home, listing, article = site.url("t", "/"), site.url("t", "/list.html"), site.url("t", "/a.html")
    _visit_while_the_store_fails(runtime, monkeypatch, "add_queued", home, run=time.time(), revisit=True)
    assert _visit(runtime, listing, run=time.time(), revisit=True) == "fetched"
    assert article in {args[0] for args, _ in _queued(client)}
    with open_store(runtime.settings.database_url) as store:
        queued = store.get_url(article)
    assert queued is not None and queued.status == UrlStatus.QUEUED


def test_a_retried_visit_follows_the_redirect_an_outage_kept_it_from_storing(
    runtime: Runtime, site: RunningSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The visit claims its redirect's target, fetches it, and the store fails before the
    document is stored: the retry finds the target claimed and must follow it all the same."""
    _publish(runtime, _source(site))
    moved, article = site.url("t", "/moved"), site.url("t", "/a.html")
    _visit_while_the_store_fails(runtime, monkeypatch, "add_stories", moved, depth=1)
    assert runtime.state.is_claimed(article)
    assert _visit(runtime, moved, depth=1, retried=True) == "fetched"
    with open_store(runtime.settings.database_url) as store:
        state = store.get_url(moved)
        assert state is not None and state.content_hash
        assert store.get_document(state.content_hash) is not None


def test_a_message_the_broker_gives_back_reaches_the_task_marked_redelivered(runtime: Runtime) -> None:
    """The poison guard counts only redelivered messages: a message rejected by a worker that
    lost its pool child (task_reject_on_worker_lost: requeued) comes back marked so, and the
    task's request says it (what fetch_page reads); a first delivery is not marked."""
    from celery.worker.request import Request
    from kombu import Consumer, Queue

    from workers.app import send_fetch

    app = runtime.sender
    send_fetch(Visit("http://t.test/a", "t", 1), via=app)
    seen: list[bool] = []
    with app.connection_for_read() as conn, conn.channel() as channel:
        got: list[Any] = []
        with Consumer(channel, [Queue(CRAWL_QUEUE)], callbacks=[lambda _, m: got.append(m)], accept=["json"]):
            for _ in range(2):
                conn.drain_events(timeout=5)
                message = got.pop()
                seen.append(bool(Request(message, app=app).delivery_info.get("redelivered")))
                message.reject(requeue=True)  # what the worker does when the pool child died
    assert seen == [False, True]


def _round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every command (or pipeline) this process sends to Redis."""
    import redis.connection

    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


def test_a_pages_links_are_sent_in_one_round_trip_in_order(
    runtime: Runtime, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.app import send_fetch, send_fetches

    app = runtime.sender
    send_fetch(Visit("http://t.test/first", "t", 0), via=app)  # connects and declares the queue
    visits = [Visit(f"http://t.test/{n}", "t", 1, run=5.0, revisit=n % 2 == 0) for n in range(20)]
    sent = _round_trips(monkeypatch)
    send_fetches(visits, via=app)
    assert sent[0] == 1
    # Every message is a whole fetch_page message, in order (the queue pops from the right).
    queued = _queued(client)[::-1][1:]
    assert [Visit.from_message(tuple(args), kwargs) for args, kwargs in queued] == visits


def test_links_whose_batch_failed_are_sent_again_one_by_one(
    runtime: Runtime, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline that fails part way leaves delivery uncertain: every visit is sent again on
    its own (with kombu's retries); a duplicate costs a skipped task, a loss would cost a page."""
    from kombu.exceptions import BatchPublishError
    from kombu.transport.redis import PublishBatch

    from workers.app import send_fetches

    def fail(self: PublishBatch) -> None:
        self.pipeline.execute()  # it half worked: the messages are in the queue
        raise BatchPublishError("Redis publish batch failed; delivery is uncertain")

    monkeypatch.setattr(PublishBatch, "flush", fail)
    visits = [Visit(f"http://t.test/{n}", "t", 1) for n in range(3)]
    send_fetches(visits, via=runtime.sender)
    urls = [args[0] for args, _ in _queued(client)]
    # Each once from the batch that half worked, and once again on its own: none lost.
    assert sorted(urls) == sorted(v.url for v in visits for _ in range(2))


def test_a_link_recorded_just_now_is_sent_fresh_and_its_first_delivery_reads_nothing(
    runtime: Runtime, site: RunningSite, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """follow() records a new link queued and marks its message fresh: its first delivery
    skips the store read (the record holds nothing to read). A delivery again reads and
    skips; a link whose URL the store knows (Redis lost the claim) is not sent fresh."""
    from storage import Store

    _publish(runtime, _source(site))
    home, article, listing = site.url("t", "/"), site.url("t", "/a.html"), site.url("t", "/list.html")
    assert _visit(runtime, home, run=time.time(), revisit=True) == "fetched"
    sent = {args[0]: kwargs for args, kwargs in _queued(client)}
    assert sent[article].get("fresh") is True
    assert "fresh" not in sent[listing]  # a list page is re-visited per run: never fresh
    reads: list[str] = []
    original = Store.get_url

    def counted(store: Store, url: str) -> Any:
        reads.append(url)
        return original(store, url)

    monkeypatch.setattr(Store, "get_url", counted)
    assert _visit(runtime, article, depth=1, fresh=True) == "fetched"
    assert article not in reads
    assert _visit(runtime, article, depth=1, fresh=True, redelivered=True) == "skipped"
    assert _visit(runtime, article, depth=1, fresh=True, retried=True) == "skipped"
    assert reads.count(article) == 2
    # Redis restarted without persistence: the claims are gone, the store still knows the URL.
    client.delete(CRAWL_QUEUE)
    runtime.state.client.delete(runtime.state.key("seen"))
    assert _visit(runtime, listing, depth=1, run=time.time() + 1, revisit=True) == "fetched"
    again = {args[0]: kwargs for args, kwargs in _queued(client)}
    assert article in again and "fresh" not in again[article]
    assert _visit(runtime, article, depth=1) == "skipped"
