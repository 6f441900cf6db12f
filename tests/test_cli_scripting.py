"""What a script running ``crawler`` can rely on: progress on a non-terminal stderr, ``wait``
telling what it waits for, the demo on its own store and ports, one bad seed disabling only
itself, the network flags, and failures on redirect hops named where they happened.

Every test runs under the socket guard: nothing connects outside 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from cli.main import main, resolve_targets
from crawler.errors import ConfigError
from crawler.records import UrlState, UrlStatus
from crawler.samplesite import RunningSite, build_site, serve_site
from crawler.samplesite.server import DEFAULT_PORT_BASE
from crawler.sources import Source, load_source
from storage import open_store
from tests.fixtures_net import SocketGuard

ROOT = Path(__file__).resolve().parents[1]
CRAWLER = ROOT / ".venv" / "bin" / "crawler"
#: Reserved for this module's tests: never flushed as a whole, only our own keys are touched.
REDIS_DB7 = "redis://127.0.0.1:6379/7"


@pytest.fixture(autouse=True)
def _local_only(socket_guard: SocketGuard) -> None:
    """Every test of this module runs under the socket guard."""


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site(crawl_delay=0.0)) as running:
        yield running


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}, **extra}


def _crawler(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CRAWLER), *args], capture_output=True, text=True, env=_env(**env), cwd=cwd, timeout=300
    )


# -- progress and the network flags ---------------------------------------------------------------


def test_progress_lines_when_stderr_is_not_a_terminal(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    result = _crawler(
        "crawl", site.url("most", "/"), "--allow-network", "127.0.0.0/8", "--delay", "0",
        "--progress", "0.2", "--db", db,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert progress, result.stderr
    assert all("fetched" in line and "pages/s" in line for line in progress)
    assert "deprecated" not in result.stderr
    quiet = _crawler(
        "crawl", site.url("most", "/"), "--allow-network", "127.0.0.0/8", "--progress", "0", "--db", db
    )
    assert "progress: " not in quiet.stderr


def test_allow_network_opens_exactly_the_range(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    before = len(site.request_log)
    refused = _crawler("crawl", site.url("most", "/"), "--allow-network", "10.0.0.0/8", "--db", db)
    assert "blocked_address" in refused.stdout
    assert len(site.request_log) == before, "a request reached the loopback server"
    other_db = f"sqlite:///{tmp_path / 'other.sqlite3'}"  # the first store remembers the refusal
    allowed = _crawler(
        "crawl", site.url("most", "/"), "--max-pages", "3", "--delay", "0", "--db", other_db,
        CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
    )  # fmt: skip
    assert allowed.returncode == 0 and len(site.request_log) > before


def test_allow_private_networks_still_works_with_a_warning(site: RunningSite, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    for args, env in (
        (("--allow-private-networks",), {}),
        ((), {"CRAWLER_ALLOW_PRIVATE_NETWORKS": "true"}),
    ):
        result = _crawler("crawl", site.url("most", "/"), "--max-pages", "2", *args, "--db", db, **env)
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
        assert len(warnings) == 1 and "--allow-network 127.0.0.0/8" in warnings[0]
        assert "pages fetched" in result.stdout


def test_a_redirect_to_the_metadata_address_is_recorded_as_blocked(
    hostile_server: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, so the socket guard watches the crawl itself."""
    base, hits = hostile_server
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    start = f"{base}/to?u={quote('http://169.254.169.254/latest/meta-data/', safe='')}"
    # The exit code is the crawl core's to decide (its only start URL failed on its hop: 1 once
    # stats.start_urls_fetched exists); what matters here is what was requested and recorded.
    main(["crawl", start, "--allow-network", "127.0.0.0/8", "--delay", "0", "--db", db])
    assert len(hits) == 2 and hits[0] == "/robots.txt"  # robots.txt and the hostile page, nothing else
    capsys.readouterr()
    assert main(["errors", "--json", "--db", db]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["blocked_address"]
    assert "cloud metadata" in report["blocked_address"][0]["message"]


def test_errors_names_the_redirect_hop_that_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    with open_store(db) as store:
        store.record_url(
            UrlState(
                "https://a.cn/start", "adhoc", UrlStatus.FAILED_PERMANENT, 0, http_status=403,
                final_url="https://b.cn/forbidden", error_reason="http_403", error_message="HTTP 403",
            )
        )  # fmt: skip
    assert main(["errors", "--db", db]) == 0
    assert "https://a.cn/start -> https://b.cn/forbidden  HTTP 403" in capsys.readouterr().out
    assert main(["errors", "--json", "--db", db]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["http_403"]
    assert entry["final_url"] == "https://b.cn/forbidden"


# -- exit codes the crawl core will feed ----------------------------------------------------------


def test_crawl_exits_1_when_no_start_url_could_be_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crawl core counts ``stats.starts_answered``; the command line turns 0 into exit 1."""
    import cli.main as cli_main

    class Stats:
        starts_answered = 0
        interrupted = False

    monkeypatch.setattr(cli_main, "crawl_sources", lambda sources, args, console: Stats())
    assert main(["crawl", "https://a.cn/", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}"]) == 1
    Stats.starts_answered = 1
    assert main(["crawl", "https://a.cn/", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}"]) == 0


# -- the demo ------------------------------------------------------------------------------------


def test_the_demo_fails_clearly_when_its_ports_are_taken(tmp_path: Path) -> None:
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", DEFAULT_PORT_BASE + 6))  # one of 8801-8808
        blocker.listen()
    except OSError:
        pass  # already taken by something else: the demo must fail all the same
    try:
        result = _crawler("demo", cwd=tmp_path)
    finally:
        blocker.close()
    assert result.returncode == 1
    last = DEFAULT_PORT_BASE + len(build_site().sites) - 1
    assert result.stderr.count("\n") == 1 and f"ports {DEFAULT_PORT_BASE}-{last}" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing crawled, no store made


def test_the_demo_uses_its_own_store() -> None:
    from cli.main import DEMO_DATABASE_URL, build_parser

    args = build_parser().parse_args(["demo"])
    assert args.db is None and DEMO_DATABASE_URL == "sqlite:///data/demo.sqlite3"
    assert args.func.__name__ == "cmd_demo"


# -- sources ---------------------------------------------------------------------------------------


GOOD = 'id = "good"\nname = "g"\nstart_urls = ["https://a.cn/"]\n'
BAD = 'id = "bad"\nname = "b"\nstart_urls = ["https://a.cn/"]\nmax_depth = -1\n'


def test_one_bad_seed_disables_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "bad.toml").write_text(BAD)
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(tmp_path))
    (good,) = resolve_targets(["good"])
    assert good.id == "good"
    with pytest.raises(ConfigError, match=r"source 'bad' is disabled: .*bad.toml: field 'max_depth'"):
        resolve_targets(["bad"])
    result = _crawler("sources", CRAWLER_SEEDS_DIR=str(tmp_path))
    assert result.returncode == 1
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 2}
    assert "ok" in rows["good"] and "invalid, disabled" in rows["bad"]
    assert "bad.toml" in result.stderr


def test_the_beat_schedule_keeps_the_good_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.toml").write_text(GOOD + 'schedule = "@every 15m"\n')
    (tmp_path / "bad.toml").write_text(BAD + 'schedule = "@every 15m"\n')
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(tmp_path))
    from workers.schedule import beat_schedule_from_seeds

    assert list(beat_schedule_from_seeds()) == ["crawl-source:good"]


def test_a_start_url_outside_allowed_hosts_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "stray.toml"
    path.write_text(
        'id = "stray"\nname = "s"\nstart_urls = ["https://www.most.gov.cn/", "https://other.cn/"]\n'
        'allowed_hosts = ["www.most.gov.cn"]\n'
    )
    with pytest.raises(ConfigError, match=r"start URL 'https://other.cn/' is outside allowed_hosts"):
        load_source(path)
    # Subdomains of a port-less host are in scope, as Scope judges them.
    Source(id="sub", name="s", start_urls=["https://news.most.gov.cn/"], allowed_hosts=["most.gov.cn"])
    for seed in sorted((ROOT / "seeds").glob("*.toml")):
        load_source(seed)  # every shipped seed still validates


# -- wait ------------------------------------------------------------------------------------------


def test_wait_prints_progress_until_the_queue_drains() -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_DB7)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (make services)", pytrace=False)
    key = "crawl"  # the crawl queue's list in kombu's layout (workers.routing.queue_keys)
    assert client.llen(key) == 0 and client.hlen("unacked") == 0, "database 7 is not empty"
    client.rpush(key, b"{}")
    process = subprocess.Popen(
        [str(CRAWLER), "wait", "--interval", "0.2", "--progress", "0.5", "--timeout", "60"],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(CRAWLER_REDIS_URL=REDIS_DB7),
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()  # it tells what it waits for...
        client.delete(key)  # ...and once that is done, it says so and exits 0
        rest = process.stderr.read().splitlines()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        client.delete(key)
    assert first.startswith("wait: 1 queued, 0 delivered and unfinished"), first
    assert rest and rest[-1].startswith("wait: idle after"), rest
