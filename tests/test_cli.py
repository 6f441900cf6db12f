"""The ``crawler`` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.document import EXPORT_KEYS
from crawler.samplesite import RunningSite, build_site, serve_site
from crawler.sources import adhoc_source_id
from settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def crawler(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=check,
        timeout=120,
    )


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site(crawl_delay=0.0)) as running:
        yield running


def test_help_documents_every_command() -> None:
    out = crawler("--help").stdout
    for command in ("crawl", "demo", "extract", "export", "stats", "errors", "sources", "duplicates"):
        assert command in out


def test_crawl_bare_url_then_stats_and_export(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    result = crawler(
        "crawl",
        site.url("most", "/"),
        "--allow-private-networks",
        "--max-depth",
        "2",
        "--delay",
        "0",
        "--db",
        db,
    )
    assert "documents stored" in result.stdout and "pages/s" in result.stdout
    stored = int(re.search(r"documents stored\s*│\s*(\d+)", result.stdout).group(1))  # type: ignore[union-attr]
    assert stored >= 5
    stats = json.loads(crawler("stats", "--json", "--db", db).stdout)
    assert stats["documents"] == stored
    # The ad-hoc source's id is the workers' (crawler enqueue URL) for the same URL.
    assert stats["documents_by_source"] == {adhoc_source_id([site.url("most", "/")]): stored}
    lines = crawler("export", "--db", db).stdout.splitlines()
    assert len(lines) == stored
    assert all(tuple(json.loads(line)) == EXPORT_KEYS for line in lines)


def test_private_networks_are_refused_by_default(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    before = len(site.request_log)
    result = crawler(
        "crawl", site.url("most", "/"), "--db", db, env={"CRAWLER_ALLOW_PRIVATE_NETWORKS": "0"}, check=False
    )
    assert result.returncode == 1, "no start URL could be fetched: the crawl failed"
    assert "blocked_address" in result.stdout
    assert len(site.request_log) == before, "a request reached the loopback server"
    errors = json.loads(crawler("stats", "--json", "--db", db).stdout)["errors_by_reason"]
    assert errors == {"blocked_address": 1}


def test_crawl_with_unknown_source_or_bad_url_is_a_usage_error(tmp_path: Path) -> None:
    result = crawler("crawl", "no-such-source", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}", check=False)
    assert result.returncode == 2 and "unknown source 'no-such-source'" in result.stderr
    result = crawler("crawl", "ftp://x.cn/", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}", check=False)
    assert result.returncode == 2 and "bad start URL" in result.stderr


def test_extract_prints_jsonl_for_saved_pages(site: RunningSite, tmp_path: Path) -> None:
    url, page = next((u, p) for u, p in site.truth.items() if u.startswith(site.base_urls["sckjt"]))
    import httpx

    body = httpx.get(url).content
    assert b"charset=gb2312" in body.lower()  # a GBK page: decoding is part of what is tested
    saved = tmp_path / "page.html"
    saved.write_bytes(body)
    missing = tmp_path / "missing.html"
    result = crawler("extract", str(saved), str(missing), "--url", url, check=False)
    assert result.returncode == 1 and "missing.html: cannot read" in result.stderr
    (line,) = result.stdout.splitlines()
    doc = json.loads(line)
    assert tuple(doc) == EXPORT_KEYS
    assert doc["url"] == url and doc["title"] == page.article.title
    assert doc["text"] == page.text


def test_extract_gives_what_the_crawl_stores(site: RunningSite, tmp_path: Path) -> None:
    """``crawler extract`` and the crawl's page step are one code path: a Traditional repost
    (readings in its text and title) and a policy page (agency, document number in a disclosure
    table) come out alike, clean."""
    import httpx

    from crawler.fetch import parse_content_type
    from crawler.links import PageKind
    from crawler.pipeline import PageJob, process_page

    repost = next(u for u, p in site.truth.items() if p.traditional)
    policy = next(u for u, p in site.truth.items() if p.site == "zjkjt" and p.column == "zcwj")
    paths, stored = [], []
    for n, url in enumerate((repost, policy)):
        response = httpx.get(url)
        _, charset = parse_content_type(response.headers.get("content-type"))
        job = PageJob(
            url=url, final_url=url, body=response.content, kind=PageKind.ARTICLE, http_charset=charset
        )
        document = process_page(job).document
        assert document is not None
        stored.append(document.to_export())
        paths.append(tmp_path / f"page{n}.html")
        paths[-1].write_bytes(response.content)
    lines = [json.loads(x) for x in crawler("extract", *map(str, paths)).stdout.splitlines()]
    varying = ("url", "final_url", "canonical_url", "source", "fetched_at")
    for got, want in zip(lines, stored, strict=True):
        assert {k: v for k, v in got.items() if k not in varying} == {
            k: v for k, v in want.items() if k not in varying
        }
    assert lines[0]["title"] == site.truth[repost].expected_title and "(" not in lines[0]["text"]
    assert lines[0]["lang"] == "zh-Hant"
    assert lines[1]["document_number"] == site.truth[policy].document_number is not None
    assert lines[1]["agency"] == site.truth[policy].expected_agency


def test_sources_lists_the_shipped_sources_and_rejects_a_bad_file(tmp_path: Path) -> None:
    out = crawler("sources").stdout
    for source_id in ("most-news", "sample-site", "ctex"):
        assert source_id in out
    (tmp_path / "good.toml").write_text('id = "good"\nname = "g"\nstart_urls = ["https://a.cn/"]\n')
    (tmp_path / "bad.toml").write_text(
        'id = "bad"\nname = "b"\nstart_urls = ["https://a.cn/"]\nmax_depth = -1\n'
    )
    result = crawler("sources", env={"CRAWLER_SEEDS_DIR": str(tmp_path)}, check=False)
    assert result.returncode == 1
    assert "good" in result.stdout
    assert "bad.toml" in result.stderr and "max_depth" in result.stderr


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`CRAWLER_{name.upper()}`" in readme, f"README does not document CRAWLER_{name.upper()}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    commands = [
        line.split("#")[0].strip() for line in first_block.splitlines() if line.strip() and "#" in line
    ]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\nmake test\n" in ci


def test_errors_lists_failures_by_reason(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    crawler(
        "crawl",
        site.url("most", "/"),
        site.url("sckjt", "/"),
        "--allow-private-networks",
        "--delay",
        "0",
        "--db",
        db,
    )
    report = json.loads(crawler("errors", "--json", "--db", db).stdout)
    broken = {
        u for u in site.broken_urls() if u.startswith((site.base_urls["most"], site.base_urls["sckjt"]))
    }
    disallowed = {
        u for u in site.disallowed_urls() if u.startswith((site.base_urls["most"], site.base_urls["sckjt"]))
    }
    assert broken and disallowed
    assert {e["url"] for e in report["http_404"]} == broken
    assert {e["url"] for e in report["robots"]} == disallowed
    text = crawler("errors", "--reason", "robots", "--limit", "1", "--db", db).stdout
    assert text.startswith(f"robots: {len(disallowed)} URL(s)")
    assert "http_404" not in text
