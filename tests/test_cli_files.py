"""Files the command line reads and writes: exports all or nothing, read commands never create a
store, ``extract`` reads standard input and keeps the crawl's bounds."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from crawler.document import EXPORT_KEYS, Document
from storage import StorageError, open_store
from storage.location import missing_store, sqlite_path

ROOT = Path(__file__).resolve().parents[1]
CRAWLER = ROOT / ".venv" / "bin" / "crawler"

ARTICLE = (
    "<html><head><title>关于印发科技计划管理办法的通知_科学技术部</title></head><body>"
    "<div class='nav'>首页 > 通知公告</div><div class='article'><h1>关于印发科技计划管理办法的通知</h1>"
    + "".join(f"<p>第{i}条 为加强科技计划管理，规范项目组织实施。</p>" for i in range(12))
    + "</div></body></html>"
)


def _doc(i: int) -> Document:
    return Document(
        url=f"https://a.cn/{i}.html",
        final_url=f"https://a.cn/{i}.html",
        canonical_url=f"https://a.cn/{i}.html",
        source="adhoc",
        title=f"标题{i}",
        text=f"正文{i}" * 40,
        content_hash=f"{i:064x}",
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store' / 'c.sqlite3'}"
    with open_store(url) as store:
        for i in range(3):
            store.add_document(_doc(i))
    return url


def _run(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(CRAWLER), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


# -- export --------------------------------------------------------------------------------------


def test_export_replaces_the_file_only_when_complete(db: str, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("the previous export\n", encoding="utf-8")
    os.chmod(target, 0o640)
    assert main(["export", "--db", db, "-o", str(target)]) == 0
    lines = target.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(tuple(json.loads(line)) == EXPORT_KEYS for line in lines)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the file keeps its permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "store"]


def test_a_failing_export_leaves_the_old_file_and_no_partial_one(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.sql import Store

    target = tmp_path / "out.jsonl"
    target.write_text("the previous export\n", encoding="utf-8")
    real = Store.iter_documents

    def failing(self: Store, **kwargs: object) -> Iterator[Document]:
        iterator = real(self, **kwargs)  # type: ignore[arg-type]
        yield next(iterator)
        raise StorageError("the database went away")

    monkeypatch.setattr(Store, "iter_documents", failing)
    assert main(["export", "--db", db, "-o", str(target)]) == 1
    assert target.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "store"]
    new = tmp_path / "new.jsonl"
    assert main(["export", "--db", db, "-o", str(new)]) == 1
    assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "store"]


def test_export_to_standard_output_and_to_dash(db: str) -> None:
    for args in (("export", "--db", db), ("export", "--db", db, "-o", "-")):
        result = _run(*args)
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 3


# -- read commands never create a store -----------------------------------------------------------


@pytest.mark.parametrize("command", ["stats", "export", "errors", "duplicates"])
def test_read_commands_refuse_a_missing_store(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [str(CRAWLER), command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"no store at {tmp_path / 'data' / 'crawler.sqlite3'}" in result.stderr
    assert "crawler crawl" in result.stderr  # how a store is made
    assert list(tmp_path.iterdir()) == []  # no stray data/ folder, no empty store


def test_read_commands_work_on_an_existing_store(db: str) -> None:
    result = _run("stats", "--json", "--db", db)
    assert result.returncode == 0 and json.loads(result.stdout)["documents"] == 3


def test_store_locations() -> None:
    assert sqlite_path("sqlite:///data/c.sqlite3") == Path("data/c.sqlite3")
    assert sqlite_path("sqlite:////abs/c.sqlite3") == Path("/abs/c.sqlite3")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql://u@h/db") is None
    assert missing_store("postgresql://u@h/db") is None
    assert missing_store("sqlite:///:memory:") is None
    assert "is not a SQLite store" in (missing_store(f"sqlite:///{ROOT}") or "")


# -- extract --------------------------------------------------------------------------------------


def test_extract_reads_standard_input() -> None:
    result = _run("extract", "-", "--url", "https://www.most.gov.cn/tztg/a.html", stdin=ARTICLE.encode("gbk"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.decode().splitlines()
    doc = json.loads(line)
    assert doc["url"] == "https://www.most.gov.cn/tztg/a.html"
    assert "第3条" in doc["text"] and doc["title"].startswith("关于印发")


def test_extract_applies_the_body_cap_to_files_and_standard_input(tmp_path: Path) -> None:
    page = tmp_path / "big.html"
    page.write_bytes(ARTICLE.encode())
    env = {"CRAWLER_MAX_BODY_BYTES": "1000"}
    for args, stdin in ((("extract", str(page)), None), (("extract", "-"), ARTICLE.encode())):
        result = _run(*args, stdin=stdin, env=env)
        assert result.returncode == 1
        err = result.stderr.decode()
        assert err.count("\n") == 1 and "too_large" in err and "CRAWLER_MAX_BODY_BYTES" in err, err
        assert result.stdout == b""


def test_extract_applies_the_extraction_time_limit(tmp_path: Path) -> None:
    """A page that takes longer than CRAWLER_EXTRACT_TIMEOUT is stopped, as in a crawl."""
    page = tmp_path / "slow.html"
    paragraphs = "".join(f"<div><p>第{i}段 为加强科技计划管理。</p></div>" for i in range(40_000))
    page.write_text(f"<html><body><div class='article'>{paragraphs}</div></body></html>", encoding="utf-8")
    result = _run("extract", str(page), env={"CRAWLER_EXTRACT_TIMEOUT": "0.05"})
    assert result.returncode == 1
    assert "extract_timeout" in result.stderr.decode() and result.stderr.decode().count("\n") == 1


def test_extract_reads_files_and_reports_a_missing_one(tmp_path: Path) -> None:
    page = tmp_path / "a.html"
    page.write_bytes(ARTICLE.encode())
    result = _run("extract", str(page), str(tmp_path / "missing.html"))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    assert "missing.html: cannot read" in result.stderr.decode()


def test_python_dash_m_cli_still_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "extract" in result.stdout
