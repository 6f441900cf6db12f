"""One crawl core, two drivers, the same outcome.

The same scenarios are crawled twice over the same local web (its one stateful page reset in
between): once by the embedded default (the ``crawler crawl`` command, SQLite) and once by the
cluster (``crawler enqueue --source`` and a real Celery worker process, Redis and PostgreSQL).
Then every URL's state (status, reason, HTTP status, depth, text key) and every document and
copy are compared one to one. Scenarios: the sample web, the hostile site, a page that fails once, a page
budget, redirects, robots.txt (see tests/webs.py).

Both drivers crawl one page at a time (``--concurrency 1``, a ``-c 1`` worker) with no host
delay: then both visit in the same breadth-first order, so which copy of a story arrives first
(and becomes the document) is decided the same way, and the comparison can be exact.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from crawler.samplesite import RunningSite, SampleWeb, build_site, serve_site
from crawler.sources import Source
from storage import open_store
from tests.cluster import CRAWLER, REPO, Cluster, isolated_redis, redis_db_url, write_seeds
from tests.pg import temporary_schema
from tests.webs import CONFORMANCE_SITES, add_conformance_sites, add_hostile_site, arm_flaky

pytestmark = [pytest.mark.services, pytest.mark.slow]

REDIS_DB = 10
PREFIX = "conformance:"
#: The values both drivers run with (environment of the CLI and of the worker).
SETTINGS = {
    "CRAWLER_ALLOWED_NETWORKS": "127.0.0.0/8",
    "CRAWLER_USER_AGENT": "policy-crawler-test/1",
    "CRAWLER_PER_HOST_DELAY": "0",
    "CRAWLER_PAGE_DEADLINE": "1.5",
    "CRAWLER_READ_TIMEOUT": "1.0",
    "CRAWLER_MAX_BODY_BYTES": "1000000",
    "CRAWLER_TASK_MAX_RETRIES": "2",
    "CRAWLER_RETRY_BASE_DELAY": "0.01",
    "CRAWLER_EXTRACT_WORKERS": "1",
    "CRAWLER_REDIS_KEY_PREFIX": PREFIX,
}
SCENARIOS = ("sample", "hostile", *CONFORMANCE_SITES)


def conformance_web() -> SampleWeb:
    web = build_site(crawl_delay=None)  # a Crawl-delay would make a worker defer, not wait
    add_hostile_site(web, slow_seconds=4, retry_after=1)
    add_conformance_sites(web)
    return web


def scenario_sources(site: RunningSite) -> list[Source]:
    def own(name: str, **fields: Any) -> Source:
        values: dict[str, Any] = {"id": name, "name": name, "start_urls": [site.url(name, "/")]}
        return Source.model_validate({**values, **fields})

    return [
        site.source(id="sample", per_host_delay=0.0, schedule=None),
        own("hostile", max_depth=1),
        own("flaky", max_depth=3),
        own("budget", max_pages=3, max_depth=10),
        own("redir", max_depth=3),
        own("robots", max_depth=3),
    ]


@dataclass
class Outcome:
    """A crawl's store, with every URL written as (site, path) so that two servings compare."""

    states: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    documents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    copies: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    #: Each page's attachment links (url, title, type, bytes, sha256, text) and each file stored.
    links: dict[tuple[str, str], list[tuple[Any, ...]]] = field(default_factory=dict)
    files: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)


def read_outcome(db_url: str, site: RunningSite) -> Outcome:
    def key(url: str | None) -> tuple[str, str] | None:
        return None if url is None else site.key_of(url)

    out = Outcome()
    with open_store(db_url) as store:
        for state in store.iter_urls():
            k = key(state.url)
            assert k is not None
            out.states[k] = (
                state.source,
                state.status.value,
                state.error_reason,
                state.http_status,
                state.depth,
                key(state.final_url),
                state.content_hash,
                state.attempts,
            )
        for doc in store.iter_documents():
            row = doc.to_export()
            row.pop("fetched_at")
            for name in ("url", "final_url", "canonical_url"):
                row[name] = key(row[name])
            k = key(doc.url)
            assert k is not None
            out.documents[k] = row
        for copy, similarity in store.iter_copies():
            k = key(copy.url)
            assert k is not None
            out.copies[k] = (copy.source, copy.content_hash, copy.duplicate_of, round(similarity, 6))
        page_urls = [d.url for d in store.iter_documents()] + [c.url for c, _ in store.iter_copies()]
        for page_url, found in store.attachments_for(page_urls).items():
            k = key(page_url)
            assert k is not None
            out.links[k] = [
                (key(a["url"]), a["title"], a["type"], a["bytes"], a["sha256"], a["text"]) for a in found
            ]
        for attachment in store.iter_attachments():
            out.files[attachment.sha256] = (
                attachment.type,
                attachment.size,
                attachment.text,
                attachment.text_error,
            )
    for source in SCENARIOS:
        urls = sum(1 for value in out.states.values() if value[0] == source)
        docs = sum(1 for value in out.documents.values() if value["source"] == source)
        out.by_source[source] = (urls, docs)
    return out


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    return {**env, **SETTINGS, **extra}


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(conformance_web()) as running:
        yield running


@pytest.fixture(scope="module")
def embedded(site: RunningSite, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """Every scenario through ``crawler crawl``, one after the other, into one SQLite store."""
    work = tmp_path_factory.mktemp("embedded")
    db = f"sqlite:///{work / 'store.sqlite3'}"
    arm_flaky(site.web)
    seeds = write_seeds(work / "seeds", *scenario_sources(site))
    env = _env({"CRAWLER_SEEDS_DIR": str(seeds), "CRAWLER_DATABASE_URL": db})
    for scenario in SCENARIOS:
        done = subprocess.run(
            [CRAWLER, "crawl", scenario, "--concurrency", "1"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return read_outcome(db, site)


@pytest.fixture(scope="module")
def distributed(
    site: RunningSite, embedded: Outcome, tmp_path_factory: pytest.TempPathFactory, pg_server_url: str
) -> Iterator[Outcome]:
    """Every scenario through ``crawler enqueue --source`` and one ``-c 1`` worker, one after the
    other, into one PostgreSQL schema (after the embedded crawl: the two never overlap)."""
    work = tmp_path_factory.mktemp("distributed")
    arm_flaky(site.web)
    with temporary_schema(pg_server_url, "conformance") as database, isolated_redis(REDIS_DB):
        open_store(database).close()
        seeds = write_seeds(work / "seeds", *scenario_sources(site))
        env = _env(
            {
                "CRAWLER_SEEDS_DIR": str(seeds),
                "CRAWLER_DATABASE_URL": database,
                "CRAWLER_REDIS_URL": redis_db_url(REDIS_DB),
            }
        )
        cluster = Cluster(env, work)
        try:
            cluster.worker("conformance", concurrency=1).wait_for_log("ready.", timeout=60)
            for scenario in SCENARIOS:
                queued = cluster.crawler("enqueue", "--source", scenario)
                assert queued.returncode == 0, queued.stderr
                waited = cluster.crawler("wait", "--timeout", "240", "--interval", "0.2", timeout=300)
                assert waited.returncode == 0, waited.stderr + cluster.logs()
            yield read_outcome(database, site)
        finally:
            cluster.stop()


def _differences(a: dict[Any, Any], b: dict[Any, Any]) -> list[str]:
    keys = sorted(set(a) | set(b), key=str)
    return [f"{k}: embedded {a.get(k)} / workers {b.get(k)}" for k in keys if a.get(k) != b.get(k)]


def test_both_drivers_end_in_the_same_url_states(embedded: Outcome, distributed: Outcome) -> None:
    assert len(embedded.states) > 100
    assert not _differences(embedded.states, distributed.states)


def test_both_drivers_store_the_same_documents_and_copies(embedded: Outcome, distributed: Outcome) -> None:
    assert len(embedded.documents) > 30 and len(embedded.copies) > 5
    assert not _differences(embedded.documents, distributed.documents)
    assert not _differences(embedded.copies, distributed.copies)


def test_both_drivers_store_the_same_attachments(embedded: Outcome, distributed: Outcome) -> None:
    assert embedded.files and any(len(links) > 1 for links in embedded.links.values())
    assert not _differences(embedded.links, distributed.links)
    assert not _differences(embedded.files, distributed.files)


def test_the_scenarios_show_what_they_are_for(embedded: Outcome) -> None:
    """Each scenario ends as it should (so an identical but wrong outcome cannot pass)."""
    states = {k: (v[1], v[2]) for k, v in embedded.states.items()}
    assert states[("flaky", "/later.html")] == ("fetched", None)
    assert embedded.states[("flaky", "/later.html")][7] == 2  # stored at its second try
    budget = [states.get(("budget", f"/p{n}.html")) for n in range(1, 7)]
    assert budget[:2] == [("fetched", None)] * 2 and budget[2] == ("queued", "over_budget")
    assert states[("redir", "/old.html")] == ("redirected", None)  # /new.html was claimed first
    assert embedded.states[("redir", "/hop1.html")][5] == ("redir", "/final.html")
    assert states[("redir", "/gone.html")] == ("failed_permanent", "http_404")
    assert states[("redir", "/self.html")] == ("failed_permanent", "redirect_loop")
    # A hop to another site is out of the source's scope; the record names the hop.
    assert states[("redir", "/away.html")] == ("out_of_scope", "redirect_out_of_scope")
    assert embedded.states[("redir", "/away.html")][5] == ("robots", "/public/b.html")
    assert states[("robots", "/private/a.html")] == ("disallowed", "robots")
    assert states[("robots", "/private/d.html")] == ("disallowed", "robots")
    assert states[("robots", "/public/c.html")] == ("fetched", None)
    assert states[("hostile", "/boom.html")] == ("failed_transient", "http_500")


def test_conformance_table(
    embedded: Outcome, distributed: Outcome, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures for the closing note: per scenario, URLs and documents, and differences."""
    rows = []
    for scenario in SCENARIOS:
        mine = {k: v for k, v in embedded.states.items() if v[0] == scenario}
        theirs = {k: v for k, v in distributed.states.items() if v[0] == scenario}
        docs_e = {k: v for k, v in embedded.documents.items() if v["source"] == scenario}
        docs_d = {k: v for k, v in distributed.documents.items() if v["source"] == scenario}
        copies_e = {k: v for k, v in embedded.copies.items() if v[0] == scenario}
        copies_d = {k: v for k, v in distributed.copies.items() if v[0] == scenario}
        rows.append(
            f"| {scenario} | {len(mine)} | {len(_differences(mine, theirs))} | {len(docs_e)} | "
            f"{len(copies_e)} | {len(_differences(docs_e, docs_d)) + len(_differences(copies_e, copies_d))} |"
        )
    with capsys.disabled():
        print("\n| scenario | URLs | state differences | documents | copies | document differences |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
