"""The raw archive (WARC write/read, rotation, threads, fork), re-extraction from it with the sample
server stopped, and the export of attachments as JSONL and as Parquet."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import multiprocessing
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from cli.main import main as crawler_main
from crawler.archive import ArchiveWriter, archive_files, read_archive
from crawler.crawl import EmbeddedCrawl
from crawler.fetch import Exchange
from crawler.samplesite import RunningSite, build_site, serve_site
from crawler.samplesite.files import SampleFile
from storage import open_store
from tests.cluster import write_seeds
from tests.crawling import crawl_options

PAGE = "<html><head><title>标题</title></head><body><p>正文：科技部召开工作会议。</p></body></html>"


def exchange(url: str, body: bytes, *, gzipped: bool = False, chunked: bool = False) -> Exchange:
    raw = gzip.compress(body, mtime=0) if gzipped else body
    headers = [("Server", "nginx"), ("Content-Type", "text/html; charset=utf-8"), ("Set-Cookie", "a=1")]
    headers += [("Set-Cookie", "b=2")]
    headers += [("Content-Encoding", "gzip")] if gzipped else []
    headers += [("Transfer-Encoding", "chunked")] if chunked else [("Content-Length", str(len(raw)))]
    request = [("Host", "www.most.gov.cn"), ("User-Agent", "policy-crawler-test/1"), ("Accept", "text/html")]
    return Exchange(url, "GET", request, "HTTP/1.1", 200, "OK", headers, raw)


def all_records(paths: list[Path]) -> list[tuple[str, dict[str, str], bytes]]:
    out = []
    for path in paths:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream, parse_http=False):
                out.append((record.headers["WARC-Type"], dict(record.headers), record.reader.read()))
    return out


def test_write_and_read_back_records_headers_and_bodies(tmp_path: Path) -> None:
    body = PAGE.encode("utf-8") * 20
    with ArchiveWriter(tmp_path) as writer:
        writer.write_exchange(
            exchange("https://www.most.gov.cn/a.html", body, gzipped=True, chunked=True),
            kind="article",
            source="most-news",
            requested_url="https://www.most.gov.cn/a",
        )
        writer.write_exchange(exchange("https://www.most.gov.cn/b.html", body), kind="list")
    (path,) = archive_files(tmp_path)
    assert path.name.endswith(".warc.gz") and writer.paths == [path]
    raw = path.read_bytes()
    assert gzip.decompress(raw).startswith(b"WARC/1.1\r\nWARC-Type: warcinfo")
    assert raw.count(b"\x1f\x8b\x08") == 5  # a gzip member per record: warcinfo + 2 x (request, response)

    records = all_records([path])
    assert [kind for kind, _, _ in records] == ["warcinfo", "request", "response", "request", "response"]
    _, request, request_block = records[1]
    _, response, _ = records[2]
    assert request["WARC-Concurrent-To"] == response["WARC-Record-ID"]
    assert request_block.startswith(b"GET /a.html HTTP/1.1\r\nHost: www.most.gov.cn\r\n")
    assert b"User-Agent: policy-crawler-test/1" in request_block
    assert response["X-Crawler-Source"] == "most-news" and response["X-Crawler-Kind"] == "article"

    first, second = read_archive([path])
    assert (first.url, first.final_url, first.kind, first.source) == (
        "https://www.most.gov.cn/a",
        "https://www.most.gov.cn/a.html",
        "article",
        "most-news",
    )
    assert first.status == 200 and first.body == body  # stored compressed, read back decoded
    assert first.header("content-encoding") == "gzip"
    assert first.header("x-crawler-transfer-encoding") == "chunked"  # renamed: stored de-chunked
    assert first.header("transfer-encoding") is None
    assert [v for k, v in first.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert (second.url, second.kind, second.source, second.body) == (
        "https://www.most.gov.cn/b.html",
        "list",
        None,
        body,
    )
    assert [r.url for r in read_archive([path], kinds=["list"])] == ["https://www.most.gov.cn/b.html"]
    assert [r.url for r in read_archive([path], source="most-news")] == ["https://www.most.gov.cn/a"]


def test_files_rotate_by_size_and_every_file_starts_with_warcinfo(tmp_path: Path) -> None:
    body = random.Random(0).randbytes(10_000)  # 10 kB that do not compress
    with ArchiveWriter(tmp_path, max_file_bytes=25_000) as writer:
        for n in range(10):
            writer.write_exchange(exchange(f"https://a.cn/{n}.html", body), kind="article")
    paths = archive_files(tmp_path)
    assert len(paths) >= 3 and paths == sorted(writer.paths)
    assert len({p.name for p in paths}) == len(paths)
    for path in paths:
        assert all_records([path])[0][0] == "warcinfo"
        assert path.stat().st_size < 25_000 + 15_000  # rotated once past the size
    assert [r.url for r in read_archive(writer.paths)] == [f"https://a.cn/{n}.html" for n in range(10)]
    assert writer.bytes_written == sum(p.stat().st_size for p in paths)


def test_threads_share_one_writer(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path, max_file_bytes=50_000)

    def work(thread: int) -> None:
        for n in range(25):
            writer.write_exchange(exchange(f"https://a.cn/{thread}/{n}", PAGE.encode() * 30), kind="any")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    urls = [r.url for r in read_archive(archive_files(tmp_path))]
    assert sorted(urls) == sorted(f"https://a.cn/{t}/{n}" for t in range(4) for n in range(25))


def _child_writes(writer: ArchiveWriter) -> None:
    writer.write_exchange(exchange("https://a.cn/child", PAGE.encode()), kind="any")
    writer.close()


def test_a_forked_process_writes_its_own_file(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path)
    writer.write_exchange(exchange("https://a.cn/parent", PAGE.encode()), kind="any")
    child = multiprocessing.get_context("fork").Process(target=_child_writes, args=(writer,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    writer.write_exchange(exchange("https://a.cn/parent-again", PAGE.encode()), kind="any")
    writer.close()
    paths = archive_files(tmp_path)
    assert len(paths) == 2
    by_file = [[r.url for r in read_archive([p])] for p in paths]
    assert sorted(by_file) == [["https://a.cn/child"], ["https://a.cn/parent", "https://a.cn/parent-again"]]


def test_a_torn_last_record_loses_only_itself(tmp_path: Path) -> None:
    with ArchiveWriter(tmp_path) as writer:
        for n in range(3):
            writer.write_exchange(exchange(f"https://a.cn/{n}", PAGE.encode() * 50), kind="any")
    (path,) = archive_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    assert [r.url for r in read_archive([path])] == ["https://a.cn/0", "https://a.cn/1"]


def test_settings_switch_the_archive(tmp_path: Path) -> None:
    from settings import Settings

    assert Settings(archive_enabled=False).archive_writer() is None
    writer = Settings(archive_dir=str(tmp_path / "w"), archive_max_file_bytes=123).archive_writer()
    assert writer is not None and writer.directory == tmp_path / "w" and writer.max_file_bytes == 123
    assert Settings().archive_enabled and Settings().archive_directory() == "data/warc"
    assert Settings(database_url="sqlite:////tmp/x/s.sqlite3").archive_directory() == "/tmp/x/warc"
    assert Settings(database_url="postgresql://u@h/db").archive_directory() is None
    told = Settings(database_url="postgresql://u@h/db", archive_dir="/srv/warc")
    assert told.archive_directory() == "/srv/warc"


# -- a crawl, its archive, and re-extraction with the server stopped ------------------------------


@dataclass
class Archived:
    site: RunningSite
    db_url: str
    directory: Path
    documents: int
    copies: int
    tmp: Path


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    tmp = tmp_path_factory.mktemp("archive")
    db_url = f"sqlite:///{tmp / 'crawl.sqlite3'}"
    directory = tmp / "warc"
    with serve_site(build_site(crawl_delay=0.2)) as site:
        # The crawl keeps its own archive. One page at a time: the archive's order is the order
        # in which the crawl stored the pages, so re-extraction meets the same copy of each story
        # first.
        options = crawl_options(
            {"per_host_delay": 0.02, "archive_enabled": True, "archive_dir": str(directory),
             "archive_max_file_bytes": 200_000},
            concurrency=1,
            extract_workers=1,
        )  # fmt: skip
        with open_store(db_url) as store:
            asyncio.run(EmbeddedCrawl([site.source()], store, options).run())
            documents, copies = store.count_documents(), store.count_copies()
    # the server is stopped from here on
    yield Archived(site, db_url, directory, documents, copies, tmp)


def _run(*args: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert crawler_main(list(args)) == 0
    return capsys.readouterr().out


def _documents(db_url: str) -> list[tuple[object, ...]]:
    with open_store(db_url) as store:
        return [
            (d.url, d.final_url, d.canonical_url, d.source, d.title, d.published_at, d.text, d.content_hash)
            for d in store.iter_documents()
        ]


def _copies(db_url: str) -> set[tuple[str, str | None]]:
    with open_store(db_url) as store:
        return {(c.url, c.duplicate_of) for c, _ in store.iter_copies()}


def test_reextract_into_the_crawled_store_changes_nothing(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _documents(archived.db_url)
    out = _run(
        "reextract", "--db", archived.db_url, "--archive", str(archived.directory), "--json", capsys=capsys
    )
    report = json.loads(out)
    assert report["unchanged"] == archived.documents > 20
    assert report["copies"] == archived.copies > 0
    assert (report["changed"], report["new"], report["changed_urls"]) == (0, 0, [])
    assert report["attachments"] == 5 and report["attachments_changed"] == 0
    assert _documents(archived.db_url) == before


def test_reextract_into_an_empty_store_gives_the_same_documents(
    archived: Archived, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command's sources are the crawl's (served on other ports than the seed file's): the
    # roles they declare for the portals rank a story's copies the same way (which is stored).
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(write_seeds(archived.tmp / "seeds", archived.site.source())))
    fresh = f"sqlite:///{archived.tmp / 'fresh.sqlite3'}"
    out = _run("reextract", "--db", fresh, "--archive", str(archived.directory), "--json", capsys=capsys)
    report = json.loads(out)
    assert report["new"] == archived.documents and report["attachments_added"] == 5
    assert _documents(fresh) == _documents(archived.db_url)
    assert _copies(fresh) == _copies(archived.db_url)
    export = archived.tmp / "fresh.jsonl"
    _run("export", "--db", fresh, "-o", str(export), capsys=capsys)
    original = archived.tmp / "original.jsonl"
    _run("export", "--db", archived.db_url, "-o", str(original), capsys=capsys)

    def without_time(path: Path) -> list[dict[str, object]]:
        return [{**json.loads(line), "fetched_at": None} for line in path.read_text().splitlines()]

    assert without_time(export) == without_time(original)


def test_reextract_stores_a_version_where_the_text_changed(
    archived: Archived, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = archived.tmp / "changed.sqlite3"
    copy.write_bytes(Path(archived.db_url.removeprefix("sqlite:///")).read_bytes())
    db = f"sqlite:///{copy}"
    with open_store(db) as store:
        target = next(d for d in store.iter_documents() if "附件" not in d.text and d.source)
    import crawler.pipeline as pipeline

    real = pipeline.extract

    def better(html: str, url: str | None = None) -> object:  # a newer extractor reads one page better
        result = real(html, url)
        if url == target.final_url:
            result.text += "\n（本文有新的段落。）"
        return result

    monkeypatch.setattr(pipeline, "extract", better)
    report = json.loads(
        _run("reextract", "--db", db, "--archive", str(archived.directory), "--json", capsys=capsys)
    )
    assert report["changed"] == 1 and report["changed_urls"] == [target.url]
    assert report["unchanged"] == archived.documents - 1
    with open_store(db) as store:
        versions = [d for d in store.iter_documents(latest_only=False) if d.url == target.url]
        assert [d.version for d in versions] == [1, 2]
        assert versions[1].previous_version == versions[0].content_hash
        assert versions[1].text.endswith("（本文有新的段落。）")


def test_reextract_filters_by_source_and_needs_an_archive(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = f"sqlite:///{archived.tmp / 'filtered.sqlite3'}"
    args = ("reextract", "--db", fresh, "--archive", str(archived.directory), "--json", "--source", "other")
    assert json.loads(_run(*args, capsys=capsys))["pages"] == 0
    assert crawler_main(["reextract", "--db", fresh, "--archive", str(archived.tmp / "none")]) == 1


def test_attachments_are_exported_with_their_text_and_stored_once(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    out = archived.tmp / "docs.jsonl"
    _run("export", "--db", archived.db_url, "-o", str(out), capsys=capsys)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    web = archived.site.web
    by_url = {line["url"]: line for line in lines}
    files: dict[str, SampleFile] = {archived.site.url(*k): f for k, f in web.files.items()}
    with_files = [archived.site.url(*k) for k in web.articles if web.files_of(k)]
    assert len(with_files) == 2
    shared = set()
    for page_url in with_files:
        exported = by_url[page_url]["attachments"]
        assert [a["url"] for a in exported] == [
            archived.site.url(*k) for k, _ in web.files_of(web_key(archived, page_url))
        ]
        for item in exported:
            truth = files[item["url"]]
            assert (item["title"], item["type"], item["text"]) == (truth.title, truth.type, truth.text)
            assert item["bytes"] == len(truth.body) and len(item["sha256"]) == 64
            if truth.name == "transfer-agency-measures":
                shared.add(item["sha256"])
    assert len(shared) == 1  # the same PDF at two URLs on two sites: one file
    with open_store(archived.db_url) as store:
        stored = list(store.iter_attachments())
    assert len(stored) == 5  # 3 files of the new notice (the shared PDF once) + 2 older PDFs
    assert len({a.sha256 for a in stored}) == 5
    texts = {a.type: a.text for a in stored if a.type in ("docx", "wps")}
    assert texts["wps"] is None and texts["docx"]
    plain = [line for line in lines if not line["attachments"]]
    assert plain and all(line["attachments"] == [] for line in plain)


def web_key(archived: Archived, url: str) -> tuple[str, str]:
    return archived.site.key_of(url)


def test_parquet_export_equals_the_jsonl_export(
    archived: Archived, capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = archived.tmp / "all.jsonl"
    parquet = archived.tmp / "all.parquet"
    _run("export", "--db", archived.db_url, "--with-copies", "-o", str(jsonl), capsys=capsys)
    _run(
        "export",
        "--db",
        archived.db_url,
        "--with-copies",
        "--format",
        "parquet",
        "-o",
        str(parquet),
        capsys=capsys,
    )
    expected = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    table = pq.read_table(parquet)
    assert table.schema.field("attachments").type.value_type.names == [
        "url",
        "title",
        "type",
        "bytes",
        "sha256",
        "text",
    ]
    assert str(table.schema.field("fetched_at").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    for row in rows:
        row["fetched_at"] = row["fetched_at"].isoformat()
    assert rows == expected
    assert any(row["attachments"] for row in rows) and len(rows) == archived.documents + archived.copies
    assert crawler_main(["export", "--db", archived.db_url, "--format", "parquet"]) == 2  # needs -o


def test_archive_records_read_with_the_bodies_a_fetch_gave(archived: Archived) -> None:
    responses = list(read_archive(archive_files(archived.directory)))
    kinds = {r.kind for r in responses}
    assert {"article", "list", "attachment"} <= kinds
    files = {archived.site.url(*k): f for k, f in archived.site.web.files.items()}
    for response in responses:
        if response.kind == "attachment" and response.url in files:
            assert response.body == files[response.url].body
    assert len(archive_files(archived.directory)) > 1  # rotated at 200 kB
    with gzip.open(io.BytesIO(archive_files(archived.directory)[0].read_bytes())) as stream:
        assert stream.read(8) == b"WARC/1.1"
    assert WarcRecordType.response  # FastWARC reads what we wrote (see all_records)
