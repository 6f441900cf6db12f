"""Bad input, as a user types it, through the installed ``crawler`` console script.

Every case must end with its exit code (2: the input is wrong), exactly one line on standard
error that names the flag or variable (and what it accepts), no traceback, and the store left
exactly as it was: same rows, same bytes. Nothing here needs a server: every case fails before
any network or broker is contacted.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crawler.document import Document
from storage import UrlState, UrlStatus, open_store

ROOT = Path(__file__).resolve().parents[1]
CRAWLER = ROOT / ".venv" / "bin" / "crawler"
SECRET = "s3cret-pw"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    says: str  # a piece of the one error line (names the flag / variable / problem)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2


C = Case
CASES: list[Case] = [
    # crawl flags
    C(("crawl", "sample-site", "--concurrency", "0"), "--concurrency: must be an integer from 1 to 1024"),
    C(("crawl", "sample-site", "--concurrency", "-4"), "--concurrency"),
    C(("crawl", "sample-site", "--concurrency", "many"), "--concurrency"),
    C(("crawl", "sample-site", "--max-pages", "-1"), "--max-pages: must be an integer of 1 or more"),
    C(("crawl", "sample-site", "--max-pages", "0"), "--max-pages"),
    C(("crawl", "sample-site", "--max-depth", "-1"), "--max-depth: must be an integer from 0 to 50"),
    C(("crawl", "sample-site", "--max-depth", "99"), "--max-depth"),
    C(("crawl", "sample-site", "--delay", "-1"), "--delay: must be a number of seconds from 0 to 3600"),
    C(("crawl", "sample-site", "--delay", "nan"), "--delay"),
    C(("crawl", "sample-site", "--delay", "inf"), "--delay"),
    C(("crawl", "sample-site", "--progress", "-2"), "--progress"),
    C(("crawl", "sample-site", "--allow-network", "10.0.0.1/8"), "did you mean 10.0.0.0/8"),
    C(("crawl", "sample-site", "--allow-network", "intranet"), "--allow-network: 'intranet' is not a CIDR"),
    C(("crawl", "sample-site", "--db", "mysql://u@h/db"), "--db: must be sqlite:///PATH"),
    C(("crawl", "sample-site", "--db", "data/c.sqlite3"), "--db"),
    C(("crawl", "sample-site", "--fast"), "unrecognized arguments: --fast"),
    C(("crawl",), "give at least one source id or start URL"),
    C(("frobnicate",), "invalid choice: 'frobnicate'"),
    # start URLs and source ids
    C(("crawl", "ftp://x.cn/"), "'ftp://x.cn/' is not an http(s) URL"),
    C(("crawl", "http://"), "'http://' has no host"),
    C(("crawl", "javascript:alert(1)"), "'javascript:alert(1)' is not an http(s) URL"),
    C(("crawl", "kjt.sc.gov.cn"), "did you mean https://kjt.sc.gov.cn/"),
    C(("crawl", "http://a b.cn/"), "invalid host name"),
    C(("crawl", "http://[::1"), "not a valid URL"),
    C(("crawl", "no-such-source"), "unknown source 'no-such-source'"),
    C(("crawl", "Most News"), "neither a source id"),
    # read commands and files
    C(("export", "-o", "{tmp}"), "is a directory"),
    C(("export", "-o", "{tmp}/no/such/folder/out.jsonl"), "does not exist"),
    C(("export", "--source", "Not An Id"), "--source: 'Not An Id' is not a source id"),
    C(("errors", "--limit", "0"), "--limit"),
    C(("errors", "--reason", "made_up"), "unknown reason 'made_up'"),
    C(("duplicates", "--story", "xyz"), "--story: must be a content_hash"),
    C(("stats", "--db", "sqlite:///{tmp}/missing.sqlite3"), "no store at"),
    C(("export", "--db", "sqlite:///{tmp}/missing.sqlite3"), "a crawl creates it"),
    C(("errors", "--db", "sqlite:///{tmp}/missing.sqlite3"), "no store at"),
    C(("duplicates", "--db", "sqlite:///{tmp}/missing.sqlite3"), "no store at"),
    C(("stats",), "no store at", env={"CRAWLER_DATABASE_URL": "sqlite:///nowhere/crawler.sqlite3"}),
    C(("extract",), "the following arguments are required: FILE"),
    C(("extract", "{tmp}/page.html", "--url", "ftp://x.cn/a.html"), "--url"),
    C(("extract", "-", "-"), "standard input (-) can be read only once"),
    # cluster commands: refused before any broker is asked
    C(("wait", "--timeout", "0"), "--timeout"),
    C(("wait", "--interval", "-1"), "--interval"),
    C(("status", "--inspect-timeout", "0"), "--inspect-timeout"),
    C(("enqueue", "--max-depth", "-1"), "--max-depth"),
    C(("enqueue", "ftp://x.cn/"), "is not an http(s) URL"),
    C(("enqueue", "--source", "BAD ID"), "--source"),
    # settings
    C(("crawl", "sample-site"), "CRAWLER_CONCURRENCY='0': must be an integer from 1",
      {"CRAWLER_CONCURRENCY": "0"}),
    C(("stats",), "CRAWLER_CONCURRENCY='lots'", {"CRAWLER_CONCURRENCY": "lots"}),
    C(("crawl", "sample-site"), "CRAWLER_PER_HOST_DELAY='-1'", {"CRAWLER_PER_HOST_DELAY": "-1"}),
    C(("extract", "{tmp}/page.html"), "CRAWLER_MAX_BODY_BYTES='0'", {"CRAWLER_MAX_BODY_BYTES": "0"}),
    C(("extract", "{tmp}/page.html"), "CRAWLER_EXTRACT_TIMEOUT='nan'", {"CRAWLER_EXTRACT_TIMEOUT": "nan"}),
    C(("stats",), "CRAWLER_KEEP_DUPLICATE_TEXT='maybe': must be true or false",
      {"CRAWLER_KEEP_DUPLICATE_TEXT": "maybe"}),
    C(("stats",), "CRAWLER_DATABASE_URL='mysql://u:***@h/db'", {"CRAWLER_DATABASE_URL": f"mysql://u:{SECRET}@h/db"}),
    C(("crawl", "sample-site"), "CRAWLER_ALLOWED_NETWORKS", {"CRAWLER_ALLOWED_NETWORKS": "127.0.0.1/8"}),
    C(("crawl", "sample-site"), "CRAWLER_USER_AGENT", {"CRAWLER_USER_AGENT": " "}),
    C(("stats",), "CRAWLER_NEAR_DUP_THRESHOLD='1.5'", {"CRAWLER_NEAR_DUP_THRESHOLD": "1.5"}),
    C(("crawl", "sample-site"), "CRAWLER_ALLOW_PRIVATE_NETWORKS",
      {"CRAWLER_ALLOW_PRIVATE_NETWORKS": "perhaps"}),
    C(("crawl", "sample-site"), "CRAWLER_MAX_LINKS_PER_PAGE", {"CRAWLER_MAX_LINKS_PER_PAGE": "-5"}),
    C(("status",), "CRAWLER_REDIS_URL='http://x'", {"CRAWLER_REDIS_URL": "http://x"}),
    C(("status",), "SOFT_TIME_LIMIT (400) must be below", {"CRAWLER_TASK_SOFT_TIME_LIMIT": "400"}),
]  # fmt: skip


def _snapshot(db: Path) -> tuple[list[str], dict[str, bytes]]:
    """The store's rows (an SQL dump) and the bytes of its files."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = list(conn.iterdump())
    conn.close()
    files = {p.name: p.read_bytes() for p in sorted(db.parent.iterdir()) if p.name.startswith(db.name)}
    return rows, files


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a document and a URL state in it, closed (every byte on disk)."""
    db = tmp_path_factory.mktemp("store") / "crawler.sqlite3"
    with open_store(f"sqlite:///{db}") as store:
        store.add_document(
            Document(
                url="https://a.cn/1.html",
                final_url="https://a.cn/1.html",
                canonical_url="https://a.cn/1.html",
                source="adhoc",
                title="标题",
                text="正文" * 50,
                content_hash="0" * 64,
            )
        )
        store.record_url(UrlState("https://a.cn/", "adhoc", UrlStatus.FETCHED, 0, http_status=200))
    return db


def _run(case: Case, store_file: Path, workdir: Path) -> tuple[Case, subprocess.CompletedProcess[str], Path]:
    workdir.mkdir()
    db = workdir / "store" / store_file.name
    db.parent.mkdir()
    shutil.copy(store_file, db)
    (workdir / "page.html").write_text("<html><body><p>正文</p></body></html>", encoding="utf-8")
    argv = [a.replace("{tmp}", str(workdir)) for a in case.argv]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")},
        "CRAWLER_DATABASE_URL": f"sqlite:///{db}",
        "CRAWLER_REDIS_URL": "redis://127.0.0.1:1/15",  # nothing must ever talk to it
        "COLUMNS": "80",
        **case.env,
    }
    result = subprocess.run(
        [str(CRAWLER), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return case, result, db


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({(c.argv, tuple(c.env.items())) for c in CASES}) == len(CASES)


def test_every_bad_input_gets_one_line_exit_2_and_the_store_is_untouched(
    store_file: Path, tmp_path: Path
) -> None:
    assert CRAWLER.exists(), f"{CRAWLER} is not installed (make .venv/.installed)"
    before = _snapshot(store_file)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda ic: _run(ic[1], store_file, tmp_path / f"case{ic[0]}"), enumerate(CASES)))
    problems: list[str] = []
    for case, result, db in runs:
        what = f"crawler {' '.join(case.argv)} {case.env or ''}"
        lines = result.stderr.splitlines()
        if result.returncode != case.code:
            problems.append(f"{what}: exit {result.returncode}, wanted {case.code}: {result.stderr!r}")
        if len(lines) != 1:
            problems.append(f"{what}: {len(lines)} lines on stderr: {result.stderr!r}")
        if "Traceback" in result.stderr or "Traceback" in result.stdout:
            problems.append(f"{what}: a traceback")
        if case.says.replace("{tmp}", "") not in result.stderr:
            problems.append(f"{what}: stderr does not say {case.says!r}: {result.stderr!r}")
        if SECRET in result.stderr:
            problems.append(f"{what}: the password was printed")
        if _snapshot(db) != before:
            problems.append(f"{what}: the store changed")
        left = sorted(p.name for p in db.parent.parent.iterdir())
        if left != ["page.html", "store"]:  # no stray data/ folder, empty store or partial export
            problems.append(f"{what}: left files behind: {left}")
        if (db.parent.parent / "missing.sqlite3").exists():
            problems.append(f"{what}: created the missing store")
    assert not problems, "\n".join(problems)
