"""Attachments: detection in realistic 附件 blocks, types, text of PDF and DOCX, download through the
fetcher's document mode, and storage once per file (both backends)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete, func, insert, select, text

from crawler.attachments import (
    attachment_text,
    docx_text,
    fetch_attachment,
    join_wrapped_lines,
    sniff_type,
    type_of_url,
)
from crawler.document import Attachment, AttachmentLink
from crawler.errors import (
    BodyTooLarge,
    DisallowedByRobots,
    EmptyExtraction,
    NotADocument,
    UnreadableAttachment,
)
from crawler.extract import extract
from crawler.fetch import Fetcher, make_client
from crawler.pipeline import AttachmentJob, PageJob, process_attachment, process_page
from crawler.samplesite import RunningSite, build_site, html, serve_site
from crawler.samplesite.files import SampleFile, cjk_pdf_bytes, docx_bytes
from crawler.samplesite.server import pdf_bytes
from storage import SCHEMA_VERSION, Store, open_store
from storage.sql import attachments, document_attachments, schema_version
from tests.crawling import fetch_limits

PAGE = "https://kjt.example.gov.cn/tzgg/202405/t20240520_1.html"
BODY = (
    "<p>各有关单位：</p>"
    "<p>为深入实施创新驱动发展战略，现将2024年度重点研发计划项目申报工作有关事项通知如下，请认真组织申报。</p>"
    "<p>一、申报单位须为在本省境内注册的企事业单位，具有独立法人资格，近三年内无严重失信行为。</p>"
)


def page(article: str, *, sidebar: str = "", head: str = "") -> str:
    return (
        "<html><head><meta charset='utf-8'>"
        f"<title>关于组织申报2024年度重点研发计划项目的通知</title>{head}</head>"
        "<body><div class='nav'><a href='/'>首页</a> <a href='/download/index.html'>下载中心</a></div>"
        f"<div class='side'>{sidebar}</div>"
        f"<div class='content'><h1>关于组织申报2024年度重点研发计划项目的通知</h1>{BODY}{article}"
        "<p style='text-align:right'>科学技术厅</p><p style='text-align:right'>2024年5月20日</p></div>"
        "<div class='footer'>版权所有 科学技术厅</div></body></html>"
    )


def found(article: str, **kwargs: str) -> list[tuple[str, str, str | None]]:
    result = extract(page(article, **kwargs), PAGE)
    return [(a.url, a.title, a.type) for a in result.attachments]


def test_a_trs_attachment_line_with_several_files() -> None:
    block = (
        "<p>附件1：<a href='./P020240520391234567890.pdf'>2024年度重点研发计划项目申报指南</a></p>"
        "<p>附件2：<a href='./P020240520391234567891.docx'>项目申报书（模板）</a></p>"
        "<p>附件3：<a href='./P020240520391234567892.xls'>申报项目汇总表</a></p>"
    )
    base = "https://kjt.example.gov.cn/tzgg/202405/"
    assert found(block) == [
        (base + "P020240520391234567890.pdf", "2024年度重点研发计划项目申报指南", "pdf"),
        (base + "P020240520391234567891.docx", "项目申报书（模板）", "docx"),
        (base + "P020240520391234567892.xls", "申报项目汇总表", "xls"),
    ]
    # the text keeps its 附件 lines, as it did before attachments were data
    assert "附件2：项目申报书（模板）" in extract(page(block), PAGE).text


def test_a_jcms_download_script_with_the_file_name_in_its_query() -> None:
    block = (
        "<p>附件：<a href='/module/download/downfile.jsp?classid=0&amp;filename=2402201000.pdf'>"
        "2024年度自治区重点研发计划项目申报指南</a></p>"
    )
    ((url, title, kind),) = found(block)
    assert url.startswith("https://kjt.example.gov.cn/module/download/downfile.jsp?")
    assert "filename=2402201000.pdf" in url and kind == "pdf"
    assert title == "2024年度自治区重点研发计划项目申报指南"


def test_an_attachment_block_after_the_text_with_a_label_and_a_list() -> None:
    block = (
        "<div class='xgfj'><p>相关附件：</p><ul>"
        "<li><a href='/u/cms/www/202405/20093512abcd.wps'>申报汇总表.wps</a></li>"
        "<li><a href='/DownLoad.aspx?FileID=8812'>项目合作协议（范本）.docx</a></li>"
        "<li><a href='/attach/download?id=99'></a></li>"
        "</ul></div>"
    )
    assert found(block) == [
        ("https://kjt.example.gov.cn/u/cms/www/202405/20093512abcd.wps", "申报汇总表.wps", "wps"),
        ("https://kjt.example.gov.cn/DownLoad.aspx?FileID=8812", "项目合作协议（范本）.docx", "docx"),
        ("https://kjt.example.gov.cn/attach/download?id=99", "download", None),
    ]


def test_a_label_paragraph_followed_by_link_paragraphs() -> None:
    block = (
        "<p>附件：</p>"
        "<p><a href='/files/guide.ofd'>申报指南（OFD版）</a></p>"
        "<p><a href='/files/all.zip'>全部申报材料</a></p>"
    )
    kinds = [(u.rsplit("/", 1)[-1], k) for u, _, k in found(block)]
    assert kinds == [("guide.ofd", "ofd"), ("all.zip", "zip")]


def test_file_links_found_among_many_links_whatever_their_case() -> None:
    """Hrefs are screened all at once; a link whose lowercase is longer ("İ") must not shift
    which link a hit belongs to."""
    links = "".join(f"<a href='/news/{i}.html'>新闻{i}</a>" for i in range(40))
    dotted = "İ" * 30
    block = (
        f"<p>{links}</p><p><a href='/{dotted}/x.html'>页面</a></p>"
        "<p>附件：<a href='./Report.PDF'>年度报告</a></p>" + links
    )
    assert found(block) == [("https://kjt.example.gov.cn/tzgg/202405/Report.PDF", "年度报告", "pdf")]


def test_a_link_in_the_body_text_is_an_attachment() -> None:
    block = "<p>请各单位下载<a href='/files/form-2024.doc'>项目申报表</a>，填写后报送。</p>"
    assert found(block) == [("https://kjt.example.gov.cn/files/form-2024.doc", "项目申报表", "doc")]


def test_links_outside_the_article_are_not_its_attachments() -> None:
    sidebar = (
        "<h3>下载中心</h3><ul><li><a href='/files/old-guide-2019.pdf'>2019年申报指南</a></li>"
        "<li><a href='/DownLoad.aspx?FileID=1'>通用表格</a></li></ul>"
    )
    block = "<p>联系电话：028-00000000。</p><p><a href='/news/202405/t1.html'>上一篇：科技新闻</a></p>"
    assert found(block, sidebar=sidebar) == []


def test_base_href_and_article_region_resolve_attachment_links() -> None:
    article = (
        "<article><h1>关于组织申报2024年度重点研发计划项目的通知</h1>"
        f"{BODY}<p>附件：<a href='tz/guide.pdf'>申报指南</a></p></article>"
    )
    document = (
        "<html><head><meta charset='utf-8'><title>通知</title><base href='/article/'></head>"
        f"<body>{article}</body></html>"
    )
    (link,) = extract(document, PAGE).attachments
    assert link.url == "https://kjt.example.gov.cn/article/tz/guide.pdf"


def test_process_page_carries_the_attachments() -> None:
    block = "<p>附件：<a href='guide.pdf'>申报指南</a></p>"
    outcome = process_page(PageJob(url=PAGE, final_url=PAGE, body=page(block).encode("utf-8")))
    assert outcome.document is not None
    assert outcome.attachments == [
        AttachmentLink("https://kjt.example.gov.cn/tzgg/202405/guide.pdf", "申报指南", "pdf")
    ]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.cn/files/A.PDF", ("pdf", False)),
        ("https://a.cn/module/download/downfile.jsp?filename=x.docx", ("docx", True)),
        ("https://a.cn/DownLoad.aspx?FileID=12", (None, True)),
        ("https://a.cn/getFile.do?id=3", (None, True)),
        ("https://a.cn/download/index.html", (None, False)),
        ("https://a.cn/news/a.html", (None, False)),
        ("https://a.cn/viewer.html?file=%2Fupload%2Fa.pdf", ("pdf", True)),
    ],
)
def test_type_of_url(url: str, expected: tuple[str | None, bool]) -> None:
    assert type_of_url(url) == expected


def test_sniff_type_trusts_the_bytes_first() -> None:
    sample = SampleFile("x", "申报书", "docx", ("一、基本情况。",))
    assert sniff_type(sample.body, "doc") == "docx"  # a .doc link that serves a DOCX
    assert sniff_type(pdf_bytes(), "docx") == "pdf"
    ole = SampleFile("w", "汇总表", "wps").body
    assert sniff_type(ole, "wps") == "wps" and sniff_type(ole, "xls") == "xls" and sniff_type(ole) == "doc"
    assert sniff_type(b"?", None, "application/vnd.ms-excel") == "xls"
    assert sniff_type(b"Rar!\x1a\x07\x00rest") == "rar"


# -- text -----------------------------------------------------------------------------------------


def sample_files() -> Iterator[SampleFile]:
    web = build_site()
    yield from {f.name: f for f in web.files.values()}.values()


def test_text_of_the_sample_webs_pdf_and_docx_is_their_known_text() -> None:
    files = list(sample_files())
    assert {f.type for f in files} == {"pdf", "docx", "wps"}
    for file in files:
        outcome = process_attachment(AttachmentJob("u", file.body, declared_type=file.type, time_limit=10))
        assert outcome.type == file.type
        assert outcome.text == file.text, file.name
        assert outcome.error_reason is None
        if file.type == "pdf":
            assert len(file.body) < 8000  # no font embedded
    # the PDF's paragraphs were wrapped over several lines; they come back whole
    pdf = next(f for f in files if f.type == "pdf")
    assert max(len(p) for p in pdf.paragraphs) > 36


def test_a_multi_page_pdf_reads_in_order() -> None:
    paragraphs = tuple(
        f"第{n}条 本条规定第{n}项事项，有关单位应当按照要求认真组织实施。" for n in range(1, 120)
    )
    data = cjk_pdf_bytes("测试办法", paragraphs)
    assert attachment_text("pdf", data) == "\n".join(("测试办法", *paragraphs))


def test_broken_and_empty_files_give_a_reason_not_a_crash() -> None:
    broken = process_attachment(AttachmentJob("u", b"%PDF-1.4\n1 0 obj garbage", declared_type="pdf"))
    assert (broken.type, broken.text, broken.error_reason) == ("pdf", None, UnreadableAttachment.reason)
    scanned = process_attachment(AttachmentJob("u", cjk_pdf_bytes("", ()), declared_type="pdf"))
    assert scanned.text is None and scanned.error_reason == EmptyExtraction.reason
    zipped = process_attachment(AttachmentJob("u", b"PK\x03\x04broken", declared_type="docx"))
    assert zipped.error_reason == UnreadableAttachment.reason
    wps = process_attachment(AttachmentJob("u", SampleFile("w", "表", "wps").body, declared_type="wps"))
    assert (wps.type, wps.text, wps.error_reason) == ("wps", None, None)


def test_docx_reads_tables_and_text_boxes_once_and_skips_deleted_text() -> None:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = (
        "<w:p><w:r><w:t>第一段</w:t></w:r><w:r><w:delText>删除的</w:delText></w:r><w:r><w:t>正文</w:t></w:r></w:p>"
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>表格单元</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        "<w:p><w:r><w:t>外</w:t></w:r><w:r><w:pict><w:txbxContent><w:p><w:r><w:t>文本框</w:t></w:r></w:p>"
        "</w:txbxContent></w:pict></w:r></w:p>"
    )
    data = docx_bytes("标题", ())
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "word/document.xml":
                content = f'<w:document xmlns:w="{w}"><w:body>{body}</w:body></w:document>'.encode()
            dst.writestr(name, content)
    assert docx_text(out.getvalue()).split("\n") == ["第一段正文", "表格单元", "外", "文本框"]


def test_join_wrapped_lines() -> None:
    page = "标题\n" + "一" * 36 + "\n" + "二" * 10 + "。\n" + "三" * 36 + "。\n" + "四" * 5
    assert (
        join_wrapped_lines(page) == "标题\n" + "一" * 36 + "二" * 10 + "。\n" + "三" * 36 + "。\n" + "四" * 5
    )


# -- download -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    web = build_site()
    web.add_site("files", disallow=("/secret/",))
    web.add_route("files", "/login.jsp", html("<html><body><form>请登录后下载</form></body></html>"))
    web.add_route("files", "/secret/a.pdf", html("never"))
    with serve_site(web) as running:
        yield running


async def _download(url: str, *, max_bytes: int | None = None, robots: bool = False) -> object:
    limits = fetch_limits()

    async def disallow(target: str) -> None:
        if "/secret/" in target:
            raise DisallowedByRobots("robots.txt disallows it", url=target)

    async with make_client(limits) as client:
        fetcher = Fetcher(client, limits, robots=disallow if robots else None)
        try:
            return await fetch_attachment(fetcher, url, max_bytes=max_bytes)
        except Exception as exc:
            return exc


def test_fetch_attachment_downloads_the_file_with_its_hash(site: RunningSite) -> None:
    key, file = next((k, f) for k, f in site.web.files.items() if f.type == "docx")
    got = asyncio.run(_download(site.url(*key)))
    assert not isinstance(got, Exception), got
    assert got.body == file.body  # type: ignore[attr-defined]
    assert got.sha256 == hashlib.sha256(file.body).hexdigest()  # type: ignore[attr-defined]
    assert got.content_type.endswith("wordprocessingml.document")  # type: ignore[attr-defined]
    exchange = got.exchange  # type: ignore[attr-defined]
    assert ("Accept", "*/*") in exchange.request_headers and exchange.status == 200


def test_fetch_attachment_refuses_pages_big_files_and_robots(site: RunningSite) -> None:
    assert isinstance(asyncio.run(_download(site.url("files", "/login.jsp"))), NotADocument)
    key = next(k for k, f in site.web.files.items() if f.type == "pdf")
    assert isinstance(asyncio.run(_download(site.url(*key), max_bytes=1000)), BodyTooLarge)
    assert isinstance(
        asyncio.run(_download(site.url("files", "/secret/a.pdf"), robots=True)), DisallowedByRobots
    )


def test_html_fetches_still_refuse_files(site: RunningSite) -> None:
    from crawler.errors import NotHTML

    async def run() -> Exception | None:
        limits = fetch_limits(user_agent="t")
        async with make_client(limits) as client:
            key = next(iter(site.web.files))
            try:
                await Fetcher(client, limits).fetch(site.url(*key))
            except NotHTML as exc:
                return exc
        return None

    assert isinstance(asyncio.run(run()), NotHTML)
    with httpx.Client() as client:  # and the sample files are what their links say
        for key, file in site.web.files.items():
            assert client.get(site.url(*key)).content == file.body


# -- storage --------------------------------------------------------------------------------------


def _attachment(body: bytes, url: str, **fields: object) -> Attachment:
    return Attachment(
        sha256=hashlib.sha256(body).hexdigest(),
        url=url,
        size=len(body),
        fetched_at=datetime(2024, 5, 20, 9, tzinfo=UTC),
        **fields,  # type: ignore[arg-type]
    )


def test_an_attachment_linked_from_two_pages_is_stored_once(store: Store) -> None:
    body = b"%PDF-1.4 the same file"
    first = AttachmentLink("https://a.gov.cn/files/measures.pdf", "管理办法", "pdf")
    second = AttachmentLink("https://b.gov.cn/files/copy-of-measures.pdf", "管理办法（转发）", "pdf")
    form = AttachmentLink("https://a.gov.cn/DownLoad.aspx?FileID=3", "申报书", None)
    store.link_attachments("https://a.gov.cn/tz/1.html", [first, form])
    store.link_attachments("https://b.gov.cn/tz/2.html", [second])
    assert store.attachment_sha256(first.url) is None
    assert store.add_attachment(_attachment(body, first.url, type="pdf", text="第一条", final_url=first.url))
    assert not store.add_attachment(_attachment(body, second.url, type="pdf", text="第一条"))
    store.resolve_attachment(form.url, error_reason=BodyTooLarge.reason)
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(attachments)) == 1
        assert conn.scalar(select(func.count()).select_from(document_attachments)) == 3
    digest = hashlib.sha256(body).hexdigest()
    assert store.attachment_sha256(second.url) == digest
    stored = store.get_attachment(digest)
    assert (
        stored is not None
        and stored.url == first.url
        and stored.text == "第一条"
        and stored.size == len(body)
    )
    exported = store.attachments_for(
        ["https://a.gov.cn/tz/1.html", "https://b.gov.cn/tz/2.html", "https://x"]
    )
    assert exported == {
        "https://a.gov.cn/tz/1.html": [
            {
                "url": first.url,
                "title": "管理办法",
                "type": "pdf",
                "bytes": len(body),
                "sha256": digest,
                "text": "第一条",
            },
            {"url": form.url, "title": "申报书", "type": None, "bytes": None, "sha256": None, "text": None},
        ],
        "https://b.gov.cn/tz/2.html": [
            {
                "url": second.url,
                "title": "管理办法（转发）",
                "type": "pdf",
                "bytes": len(body),
                "sha256": digest,
                "text": "第一条",
            }
        ],
    }
    # linking again is idempotent and keeps what the download found
    store.link_attachments("https://b.gov.cn/tz/2.html", [second])
    assert store.attachments_of("https://b.gov.cn/tz/2.html")[0]["sha256"] == digest
    store.update_attachment_text(digest, "第一条 新", None)
    assert [a.text for a in store.iter_attachments()] == ["第一条 新"]


def test_a_version_3_database_gets_the_attachment_tables_and_keeps_its_rows(store_url: str) -> None:
    from crawler.dedup import Fingerprint
    from crawler.document import Document

    doc = Document(url="https://a/1", final_url="https://a/1", text="正文" * 50, content_hash="h" * 64)
    with open_store(store_url) as store:
        store.add_stories([(doc, Fingerprint.of(doc.text))])
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE document_attachments"))
            conn.execute(text("DROP TABLE attachments"))
            conn.execute(delete(schema_version))
            conn.execute(insert(schema_version).values(version=3, applied_at=datetime.now(UTC)))
    with open_store(store_url) as store:
        assert [d.url for d in store.iter_documents()] == ["https://a/1"]
        store.link_attachments("https://a/1", [AttachmentLink("https://a/f.pdf", "文件", "pdf")])
        assert store.attachments_of("https://a/1")[0]["url"] == "https://a/f.pdf"
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version))
            assert versions.scalars().all() == [3, SCHEMA_VERSION]
