"""Extraction plans (crawler.plans): learned from trafilatura on a template's first pages, used
on its later pages, checked, shared through the store, and retired when the template changes.

The pages are the sample web's, fetched from its server on 127.0.0.1 and put through the
crawl's own page step (:func:`crawler.pipeline.process_page`) with a :class:`PlanBook` in the
loop, the way both drivers do it. "Never worse" is checked page by page against the same step
without plans, and against the sample web's ground truth.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from lxml.html import fromstring

from crawler import plans as plans_module
from crawler.fastread import SKIP
from crawler.links import PageKind
from crawler.pipeline import PageJob, PageOutcome, process_page
from crawler.plans import (
    LEARN_PAGES,
    MAX_MISSES_IN_ROW,
    PlanBook,
    agree,
    container_lines,
    host_of,
    template_of,
    write_plans,
)
from crawler.samplesite import build_site, serve_site
from storage import open_store
from tests.webs import ServedArticle, fetch_articles


@pytest.fixture(scope="module")
def fetched() -> Iterator[list[ServedArticle]]:
    """Every article page of a sample web with several pages per template, as served."""
    with serve_site(build_site(scale=4, crawl_delay=0.0)) as site:
        yield fetch_articles(site)


def _job(url: str, body: bytes, charset: str | None, source: str = "s") -> PageJob:
    return PageJob(
        url=url, final_url=url, body=body, kind=PageKind.ARTICLE, http_charset=charset, source=source
    )


def run_with_book(
    book: PlanBook, url: str, body: bytes, charset: str | None, source: str = "s"
) -> PageOutcome:
    """What a driver does around process_page (crawl.EmbeddedCrawl.process, ClusterPorts.process)."""
    job = _job(url, body, charset, source)
    host = host_of(url)
    job.plans = book.orders(source, host)
    outcome = process_page(job)
    if outcome.plan_report is not None:
        book.record(source, host, outcome.plan_report)
    return outcome


def reference(url: str, body: bytes, charset: str | None) -> PageOutcome:
    return process_page(_job(url, body, charset))


def _extraction(outcome: PageOutcome) -> plans_module.Extraction:
    doc = outcome.document
    assert doc is not None, outcome.error_reason
    return plans_module.Extraction(
        text=doc.text,
        title=doc.title,
        published_at=doc.published_at,
        agency=doc.agency,
        author=doc.author,
        canonical_url=doc.canonical_url,
        lang=doc.lang,
        document_number=doc.document_number,
        damaged=outcome.damaged,
        converted=outcome.converted,
        attachments=outcome.attachments,
    )


# -- the pieces -----------------------------------------------------------------------------------


def test_a_template_is_the_url_shape_without_its_ids() -> None:
    assert template_of("http://a.cn/kjbgz/201208/t20120828_189001.html") == "2/0_0.html"
    assert template_of("http://a.cn/kjbgz/202405/t20240520_189133.html") == "2/0_0.html"
    assert template_of("http://a.cn/art/2024/5/20/art_1229_2487019.html") == "4/art_0_0.html"
    assert (
        template_of("http://a.cn/ShowArticle.asp?ArticleID=12&page=2") == "0/ShowArticle.asp?ArticleID&page"
    )
    assert template_of("http://a.cn/index.html") != template_of("http://a.cn/news/index.html")
    # sites on one host keep apart
    assert host_of("http://127.0.0.1:8001/a") != host_of("http://127.0.0.1:8002/a")


def test_container_lines_are_cut_as_trafilatura_cuts_them() -> None:
    root = fromstring(
        "<div id='zoom'><p>第一段<b>加粗</b>文字。</p><p>上行<br>下行</p>"
        "<table><tr><td>名称</td><td>数量</td></tr></table>"
        "<table><tr><td><p>布局表格里的段落一。</p><p>段落二。</p></td></tr></table>"
        "<h2>小标题</h2><ul><li>条目</li></ul><script>var x = 1;</script>"
        "<div class='share'>分享到：微信</div></div>"
    )
    lines = container_lines(root, drops=[("div", "class", "share")])
    assert [(x.text, x.kind) for x in lines] == [
        ("第一段加粗文字。", "p"),
        ("上行", "p"),
        ("下行", "p"),
        ("| 名称 | 数量 | ", "row"),
        ("布局表格里的段落一。", "p"),
        ("段落二。", "p"),
        ("小标题", "head"),
        ("条目", "item"),
    ]


def test_the_fast_path_skips_what_trafilatura_removes_with_its_content() -> None:
    from trafilatura.settings import MANUALLY_CLEANED

    assert set(MANUALLY_CLEANED) <= SKIP
    root = fromstring(
        "<div><p>正文。</p><p style='display: none'>隐藏</p><p hidden>也隐藏</p><aside>侧栏</aside></div>"
    )
    assert [x.text for x in container_lines(root)] == ["正文。"]


# -- learned, used, never worse -------------------------------------------------------------------


def test_a_plan_is_learned_from_agreeing_pages_then_serves_the_template(fetched: list[ServedArticle]) -> None:
    most = [f for f in fetched if f.page.site == "most"]
    assert len(most) > LEARN_PAGES + 5
    book = PlanBook()
    events, checked_why = [], []
    for f in most:
        outcome = run_with_book(book, f.url, f.body, f.charset)
        assert outcome.plan_report is not None
        events.append(outcome.plan_report.event)
        if outcome.plan_report.event == "verified":
            checked_why.append(outcome.plan_report.why)
    # learning on the first pages (trafilatura), the fast path from then on
    assert events[:LEARN_PAGES] == ["candidate"] * LEARN_PAGES
    assert set(events[LEARN_PAGES:]) <= {"served", "verified"}
    # checked beyond the 1-in-50 sample (which pages fall in it depends on the server's port):
    # a page outside the lengths seen while learning, no more
    assert len([why for why in checked_why if why != "sampled"]) <= 2, checked_why
    plan = book.plan("s", host_of(most[0].url), template_of(most[0].url))
    assert plan is not None and plan["recipe"]["container"][2] in ("Zoom", "TRS_Editor")


def test_fast_path_documents_are_the_ground_truth_and_agree_with_trafilatura(
    fetched: list[ServedArticle],
) -> None:
    """Every sample-web article through plans: the same stored text, title, agency, document
    number and date as the ground truth (what test_sample_ground_truth asks of trafilatura's
    path), and at least as good as trafilatura's own document for the page."""
    book = PlanBook()
    served = Counter[str]()
    for f in fetched:
        outcome = run_with_book(book, f.url, f.body, f.charset, source=f.page.site)
        plain = reference(f.url, f.body, f.charset)
        report = outcome.plan_report
        if report is not None and report.event in ("served", "verified"):
            served[f.page.site] += 1
        doc, page = outcome.document, f.page
        assert doc is not None, (f.url, outcome.error_reason)
        assert agree(_extraction(outcome), _extraction(plain)) is None, f.url
        expected = page.expected_text
        assert doc.text == expected, f.url
        assert doc.title == page.expected_title, f.url
        assert doc.agency == page.expected_agency, f.url
        assert doc.document_number == page.document_number, f.url
        assert doc.published_at and doc.published_at[:10] == page.date, f.url
        assert outcome.converted == page.traditional, f.url
    # not vacuous: most pages of the template-rich sites took the fast path
    assert sum(served.values()) >= 0.6 * len(fetched), served
    assert {"most", "sckjt", "xjkjt", "hitech"} <= set(served), served


def test_varying_pages_never_get_a_plan() -> None:
    """A site whose every page is laid out with its own names: trafilatura keeps them all."""
    book = PlanBook()
    for n in range(plans_module.MAX_LEARN_TRIES + 5):
        name = "".join(chr(97 + (n * k + k) % 26) for k in (1, 3, 7))  # letters only: ids, not numbers
        body = _article_html(n, container=f"post-{name}", main=f"wrap-{name}").encode()
        outcome = run_with_book(book, f"http://forum.test/thread/{n}.html", body, "utf-8")
        assert outcome.document is not None
        assert outcome.plan_report is None or outcome.plan_report.event in ("candidate", "no_candidate")
    orders = book.orders("s", "forum.test")
    assert not orders.active and template_of("http://forum.test/thread/1.html") in orders.settled


# -- a template that changes mid-crawl --------------------------------------------------------------

_PARAGRAPHS = [
    "为深入实施创新驱动发展战略，加快推进科技强省建设，现将有关事项通知如下，请各单位认真组织实施。",
    "各地科技管理部门要加强组织领导，细化工作措施，确保各项任务落到实处，按时报送工作进展情况。",
    "申报单位应当具有独立法人资格，近三年内无不良信用记录，具备开展相关研究工作的条件和能力。",
    "本通知自发布之日起施行，由省科学技术厅负责解释，未尽事宜另行通知，联系人及电话见附件。",
]


def _article_html(n: int, *, container: str = "zoom", extra: str = "", main: str = "main") -> str:
    paragraphs = "".join(f"<p>{p[: 20 + (n * 7) % 25]}{p}</p>" for p in _PARAGRAPHS[: 2 + n % 3])
    return (
        f"<html><head><title>关于开展第{n}批科技项目申报工作的通知_某省科技厅</title></head><body>"
        "<div class='nav'><a href='/'>首页</a> <a href='/a'>机构</a> <a href='/b'>政务公开</a></div>"
        f"<div class='{main}'><h1>关于开展第{n}批科技项目申报工作的通知</h1>"
        f"<div class='info'>来源：某省科技厅 日期：2024-05-{1 + n % 28:02d}</div>"
        f"<div id='{container}'>{paragraphs}{extra}</div>"
        "<div class='tools'>【打印】【关闭】</div></div>"
        "<div class='foot'>版权所有：某省科学技术厅 ICP备12345678号</div></body></html>"
    )


_COMMENTS = (
    "<div class='comments'><p>课题组在前期研究基础上进一步明确了技术路线和阶段目标，"
    "预计明年完成中试验证，相关成果将在省内重点企业推广应用。</p></div>"
)

#: How a redesign breaks the plan: a block of reader comments now inside the container
#: (trafilatura drops it by its class; the container would keep it), or the body moved to a container of
#: another name.
REDESIGNS: dict[str, Callable[[int], str]] = {
    "new block inside the container": lambda n: _article_html(n, extra=_COMMENTS),
    "container renamed": lambda n: _article_html(n, container="article-body"),
}


@pytest.mark.parametrize("redesign", sorted(REDESIGNS))
def test_a_template_change_mid_crawl_puts_out_no_wrong_page_and_retires_the_plan(redesign: str) -> None:
    book = PlanBook()
    site, template = "http://gov.test", template_of("http://gov.test/art/1.html")
    events: list[str] = []
    for n in range(40):
        html = _article_html(n) if n < 20 else REDESIGNS[redesign](n)
        url = f"{site}/art/{n}.html"
        outcome = run_with_book(book, url, html.encode(), "utf-8")
        plain = reference(url, html.encode(), "utf-8")
        assert outcome.document is not None and plain.document is not None
        # no page comes out wrong: each is trafilatura's document, or agrees with it
        assert agree(_extraction(outcome), _extraction(plain)) is None, (n, redesign)
        assert outcome.plan_report is not None
        events.append(outcome.plan_report.event)
        if n == 19:
            assert book.plan("s", "gov.test", template) is not None  # learned on the old design
    assert events[LEARN_PAGES:20].count("served") >= 15
    after = events[20:]
    if redesign == "container renamed":
        assert after[:MAX_MISSES_IN_ROW] == ["miss"] * MAX_MISSES_IN_ROW
    else:
        assert after[0] == "mismatch"  # the new block's layout elements had it checked at once
    # retired, then learned again on the new design, which the fast path serves from then on
    plan = book.plan("s", "gov.test", template)
    assert plan is not None and plan["version"] == 2
    assert after[-5:] == ["served"] * 5 or set(after[-5:]) <= {"served", "verified"}
    writes = book.take_writes()
    assert [w for w in writes if w[0] == "retire"]


# -- shared through the store ---------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _load(book: PlanBook, store: plans_module.PlanStore, source: str, host: str) -> None:
    if book.wants_load(source, host):
        book.install(source, host, store.load_plans(source, host))


@pytest.mark.services
def test_two_workers_share_a_plan_through_postgresql_and_its_retirement(pg_url: str) -> None:
    """Worker A learns a plan; worker B, another process's book on the same PostgreSQL store,
    serves pages with it without learning; both add to its counts; A's retirement reaches B at
    its next reload."""
    clock = _Clock()
    source, host = "s", "gov.test"
    with open_store(pg_url) as store_a, open_store(pg_url) as store_b:
        a, b = PlanBook(reload_after=30, clock=clock), PlanBook(reload_after=30, clock=clock)

        def visit(book: PlanBook, store: plans_module.PlanStore, n: int, html: str | None = None) -> str:
            _load(book, store, source, host)
            url = f"http://{host}/art/{n}.html"
            outcome = run_with_book(book, url, (html or _article_html(n)).encode(), "utf-8", source)
            assert outcome.plan_report is not None
            return outcome.plan_report.event

        assert [visit(a, store_a, n) for n in range(LEARN_PAGES)] == ["candidate"] * LEARN_PAGES
        write_plans(store_a, a.take_writes())
        served_b = [visit(b, store_b, n) for n in range(10, 20)]
        assert "candidate" not in served_b and served_b.count("served") >= 8
        served_a = [visit(a, store_a, n) for n in range(20, 25)]
        write_plans(store_b, b.take_writes())
        write_plans(store_a, a.take_writes())
        (stored,) = store_a.load_plans(source, host)
        counts = stored["counts"]
        assert counts["served"] + counts["verified"] == 15 - served_a.count("miss") - served_b.count("miss")
        # the template changes; A finds out and retires the plan; B learns of it on its reload
        assert visit(a, store_a, 30, REDESIGNS["new block inside the container"](30)) == "mismatch"
        write_plans(store_a, a.take_writes())
        assert store_b.load_plans(source, host)[0]["status"] == "retired"
        assert b.orders(source, host).active  # B has not reloaded yet
        clock.now += 31
        _load(b, store_b, source, host)
        assert not b.orders(source, host).active


def test_the_book_writes_nothing_twice_and_counts_only_its_plans_version() -> None:
    book = PlanBook()
    for n in range(LEARN_PAGES + 2):
        run_with_book(book, f"http://gov.test/art/{n}.html", _article_html(n).encode(), "utf-8")
    writes = book.take_writes()
    assert [w[0] for w in writes] == ["save", "counts"]
    assert book.take_writes() == []
    # a report on a version the book no longer has counts toward that version only
    stale = plans_module.PlanReport(template_of("http://gov.test/art/1.html"), 7, "served")
    book.record("s", "gov.test", stale)
    (counts,) = book.take_writes()
    assert counts[0] == "counts" and counts[3][1] == 7


def test_process_page_without_plans_reports_nothing(fetched: list[ServedArticle]) -> None:
    f = fetched[0]
    assert reference(f.url, f.body, f.charset).plan_report is None
    assert re.fullmatch(r"\d+/.+", template_of(f.url))
