"""A worker stopped with SIGTERM (a deploy, ``docker compose stop``) hands its tasks back at once.

The worker below holds six visits: one fetching a page that answers slowly (the server holds it
30 s), five waiting for their host's turn (messages with a countdown, unacknowledged in the
worker). After SIGTERM every message must be back in its queue within the soft shutdown timeout
and a few seconds, long before the slow page would have ended (Celery's warm shutdown waits for
it; docker's grace period is 10 s, after which the messages would sit unacknowledged until the
visibility timeout). A second worker then finishes the crawl: nothing is lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from crawler.samplesite import Request, Response, RunningSite, SampleWeb, html, serve_site, slow
from crawler.sources import Source
from storage import UrlStatus, open_store
from tests.cluster import Cluster, isolated_redis, redis_db_url, wait_for, write_seeds
from tests.pg import temporary_schema
from tests.webs import article_page
from workers.routing import CRAWL_QUEUE, KOMBU_UNACKED_KEY

pytestmark = [pytest.mark.services, pytest.mark.slow]

REDIS_DB = 9
SOFT_SHUTDOWN = 1.0
PAGES = [f"/a{i}.html" for i in range(6)]


def slow_first(seconds: float) -> Callable[[str], object]:
    """Routes for pages of which only the very first request is held ``seconds`` by the server
    (the page in flight when the worker is stopped); later requests answer at once."""
    first = threading.Event()

    def route(page: str) -> object:
        def handle(request: Request) -> Response:
            if first.is_set():
                return html(page)
            first.set()
            return slow(seconds, html(page))

        return handle

    return route


@pytest.fixture
def site() -> Iterator[RunningSite]:
    web = SampleWeb()
    web.add_site("s")
    web.add_route(
        "s", "/", html("<html><body>" + "".join(f'<a href="{p}">{p}</a>' for p in PAGES) + "</body></html>")
    )
    route = slow_first(30)
    for n, path in enumerate(PAGES):
        web.add_route("s", path, route(article_page(40 + n)))  # type: ignore[arg-type]
    with serve_site(web) as running:
        yield running


def test_sigterm_hands_the_workers_tasks_back_at_once(
    site: RunningSite, pg_server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Source(
        id="s",
        name="s",
        start_urls=[site.url("s", "/")],
        max_depth=1,
        per_host_delay=3.0,  # the other pages wait for the host's turn: countdown messages
        per_host_concurrency=1,
    )
    with temporary_schema(pg_server_url, "shutdown") as database, isolated_redis(REDIS_DB) as client:
        open_store(database).close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        env.update(
            CRAWLER_SEEDS_DIR=str(write_seeds(tmp_path / "seeds", source)),
            CRAWLER_DATABASE_URL=database,
            CRAWLER_REDIS_URL=redis_db_url(REDIS_DB),
            CRAWLER_REDIS_KEY_PREFIX="shutdown:",
            CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
            CRAWLER_WORKER_SOFT_SHUTDOWN_TIMEOUT=str(SOFT_SHUTDOWN),
            # The example: a shorter visibility timeout is one setting; every limit that
            # depends on it follows (the worker would refuse to start otherwise).
            CRAWLER_VISIBILITY_TIMEOUT="180",
        )
        cluster = Cluster(env, tmp_path)
        try:
            first = cluster.worker("first")
            first.wait_for_log("ready.", timeout=60)
            assert cluster.crawler("enqueue", "--source", "s").returncode == 0

            def holding() -> bool:  # one page in flight, the others held with a countdown
                fetching = any(r.path in PAGES for r in site.request_log.snapshot())
                return fetching and _int(client.hlen(KOMBU_UNACKED_KEY)) == len(PAGES)

            wait_for(holding, timeout=30, what="the worker to hold every page")
            stopped = time.monotonic()
            os.kill(first.proc.pid, signal.SIGTERM)
            wait_for(
                lambda: _int(client.hlen(KOMBU_UNACKED_KEY)) == 0 and _queued(client) == len(PAGES),
                timeout=20,
                interval=0.05,
                what="the messages to be back in the queue",
            )
            handed_back = time.monotonic() - stopped
            first.proc.wait(timeout=20)
            exited = time.monotonic() - stopped
            assert handed_back < SOFT_SHUTDOWN + 5, handed_back

            cluster.worker("second").wait_for_log("ready.", timeout=60)
            waited = cluster.crawler("wait", "--timeout", "90", "--interval", "0.2", timeout=120)
            assert waited.returncode == 0, waited.stderr + cluster.logs()
        finally:
            cluster.stop()
        with open_store(database) as store:
            states = {s.url: s.status for s in store.iter_urls()}
            documents = store.count_documents()
        assert {states.get(site.url("s", p)) for p in PAGES} <= {UrlStatus.FETCHED, UrlStatus.DUPLICATE}
        assert documents == len(PAGES)
    with capsys.disabled():
        print(
            f"\nSIGTERM: messages back in the queue after {handed_back:.2f} s, worker gone after "
            f"{exited:.2f} s (soft shutdown timeout {SOFT_SHUTDOWN:g} s; the slow page held 30 s)"
        )


def _int(value: object) -> int:
    return int(value)  # type: ignore[call-overload]


def _queued(client: redis.Redis) -> int:
    return _int(client.llen(CRAWL_QUEUE))
