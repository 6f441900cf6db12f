"""The fast path's lexbor reading (crawler.fastread): it reads what the lxml reading reads, or
steps aside.

Compared with :mod:`crawler.extract`'s lxml reading on the labelled corpus (80 real pages of
many sites), the saved pages and the sample web, and on small pages made to hit each rule:
labels split by comments and spans, label cells, streams inside and around the container,
links to files, pages without a stated date.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler import fastread
from crawler.decode import decode_html
from crawler.errors import ExtractionError
from crawler.evaluate import default_corpus, load_corpus
from crawler.extract import extract, parse_html, read_page, read_page_meta
from crawler.links import LinkTargets, extract_links_capped
from crawler.plans import (
    PlanBook,
    PlanOrders,
    PlanReport,
    agree,
    container_lines,
    extract_planned,
    find_all,
    layout_tokens,
    learn,
    template_of,
)
from crawler.samplesite import build_site, serve_site
from tests.webs import fetch_articles

SAVED = Path(__file__).parent / "pages"
CORPUS = default_corpus()


def _corpus_pages() -> list[tuple[str | None, str]]:
    if not CORPUS.is_dir():
        return []
    return [(case.url, decode_html(case.html, None, None).text) for case in load_corpus(CORPUS)]


def _saved_pages() -> list[tuple[str | None, str]]:
    return [(None, decode_html(p.read_bytes(), None, None).text) for p in sorted(SAVED.glob("*.html"))]


@pytest.fixture(scope="module")
def sample_pages() -> Iterator[list[tuple[str | None, str]]]:
    with serve_site(build_site(scale=3, crawl_delay=0.0)) as site:
        yield [(f.url, decode_html(f.body, f.charset, None).text) for f in fetch_articles(site)]


def _lexbor_meta(html: str) -> dict[str, str]:
    body = fastread.parse(html).body
    assert body is not None
    return fastread.gather_meta(fastread._label_nodes(body), fastread._read_node)


# -- metadata labels --------------------------------------------------------------------------------


def test_every_corpus_saved_and_sample_page_gives_the_same_labels_from_either_tree(
    sample_pages: list[tuple[str | None, str]],
) -> None:
    corpus = _corpus_pages()  # where the shared corpus is there (a bare checkout has none)
    pages = corpus + _saved_pages() + sample_pages
    assert len(pages) >= len(corpus) + 80
    with_labels = 0
    for url, html in pages:
        tree = parse_html(html)
        assert tree is not None
        expected = read_page_meta(tree)
        assert _lexbor_meta(html) == expected, url
        with_labels += bool(expected)
    assert with_labels > len(pages) // 2  # not vacuous: most pages state a source or a date


LABEL_PAGES = {
    "label in a span of the line": "<div><span>来源：</span>科技部　<span>发布时间：2024-03-05</span></div>",
    "a comment splits the line": "<p>来源：<!-- 编辑 -->科技日报　日期：2024-03-05</p>",
    "disclosure table": (
        "<table><tr><td>索引号：</td><td>000014349/2024-00012</td></tr>"
        "<tr><td>发文机关：</td><td>科技部</td></tr><tr><td>发文字号：</td><td>国科发区〔2024〕12号</td></tr>"
        "<tr><td>成文日期：</td><td>2024-03-01</td></tr></table>"
    ),
    "label cell, comment, value": "<dl><dt>发布机构：</dt><!-- x --><dd>四川省科学技术厅</dd></dl>",
    "label with its value as tail": "<div><b>来源:</b> 新华网 <b>作者:</b> 张三</div>",
    "traditional labels": "<div>來源：科技部 發布時間：2024年3月5日</div>",
    "labels in a comment box": "<p>来源：某网 日期：2024-01-02</p><ul><li>作者：网友甲 来源：评论</li></ul>",
}


@pytest.mark.parametrize("name", sorted(LABEL_PAGES))
def test_label_rules_read_the_same_from_either_tree(name: str) -> None:
    html = f"<html><body><div class='nav'>首页</div>{LABEL_PAGES[name]}<p>正文。</p></body></html>"
    tree = parse_html(html)
    assert tree is not None
    expected = read_page_meta(tree)
    assert expected  # each page states something
    assert _lexbor_meta(html) == expected


def test_a_text_node_is_found_by_its_offset_through_nested_elements() -> None:
    body = fastread.parse("<body><div>a<b>bc<i>de</i></b>f</div><p>gh</p></body>").body
    assert body is not None
    text = body.text(separator="\0")
    for offset, char in enumerate(text):
        node = fastread._text_node_at(body, offset)
        if char == "\0":
            continue
        assert node is not None and char in (node.text_content or ""), offset
    assert fastread._text_node_at(body, len(text)) is None


# -- the served page --------------------------------------------------------------------------------


_ZOOM_HTML = "<div id='zoom'><p>第一段正文，内容足够长，说明有关事项。</p><p>第二段正文。</p></div>"
#: Text outside the container: a stream around it then holds less than half the page's text.
_LONG_TEXT = "<div class='side'>" + "<p>其他栏目的长段文字，与本文无关，但篇幅较长。</p>" * 8 + "</div>"


def _page(container: str = _ZOOM_HTML, **parts: str) -> str:
    return (
        "<html><head><title>关于开展项目申报的通知_某省科技厅</title>"
        "<link rel='canonical' href='/a/1.html'></head><body>"
        "<div class='nav'><a href='/'>首页</a><a href='/app/download.htm'>客户端下载</a></div>"
        f"<h1>关于开展项目申报的通知</h1>{parts.get('info', '<p>来源：某省科技厅 日期：2024-05-02</p>')}"
        f"{container}{parts.get('after', '')}<div class='foot'>版权所有 ICP备12345678号</div></body></html>"
    )


ZOOM = ("div", "id", "zoom")


def _both(html: str, url: str = "http://gov.test/a/1.html") -> tuple[fastread.Served, list[str]]:
    """The lexbor reading, and the lxml reading's lines of the same container."""
    served = fastread.read_served(fastread.parse(html), url, ZOOM, ())
    page = read_page(html, url)
    (box,) = find_all(page.region, ZOOM)
    assert served.tokens == layout_tokens(box)
    assert served.page.page_meta == page.page_meta
    assert served.page.head == page.head
    return served, [x.text for x in container_lines(box)]


def test_a_plain_page_reads_the_same_from_either_tree() -> None:
    served, lines = _both(_page())
    assert (
        [x.text for x in served.lines] == lines == ["第一段正文，内容足够长，说明有关事项。", "第二段正文。"]
    )
    assert served.page.head.canonical == "http://gov.test/a/1.html"


def test_a_stream_inside_the_container_is_pruned_as_the_lxml_reading_prunes_it() -> None:
    related = "<ul class='related-list'><li><a href='/b'>另一篇文章的标题</a></li></ul>"
    html = _page(
        f"<div id='zoom'><p>第一段正文，内容足够长，说明有关事项，请认真组织实施。</p>{related}</div>"
    )
    served, lines = _both(html)
    assert [x.text for x in served.lines] == lines
    assert not any("另一篇" in x.text for x in served.lines)


def test_tables_hidden_and_skipped_elements_cut_the_same_lines() -> None:
    body = (
        "<div id='zoom'><p>正文第一段，内容足够长。<br>换行后的内容。</p>"
        "<table><tr><td>项目</td><td>金额</td></tr><tr><td>甲</td><td>100</td></tr></table>"
        "<table><tr><td><p>布局表格中的段落。</p><p>第二段。</p></td></tr></table>"
        "<p style='display:none'>隐藏</p><script>var a = 1;</script>"
        "<h2>小标题</h2><ul><li>条目</li></ul></div>"
    )
    served, lines = _both(_page(body))
    assert [x.text for x in served.lines] == lines
    assert [x.kind for x in served.lines] == [x.kind for x in read_lines(body)]


def read_lines(container_html: str) -> list[fastread.Line]:
    page = read_page(_page(container_html), "http://gov.test/a/1.html")
    (box,) = find_all(page.region, ZOOM)
    return container_lines(box)


@pytest.mark.parametrize(
    ("html", "page_only"),
    [
        (_page(after="<p>附件：<a href='/files/申报指南.pdf'>申报指南</a></p>"), True),
        (_page(after="<a href='/down/DownLoad.aspx?FileID=12'>下载</a>"), True),
        (_page(info="<p>某省科技厅</p>"), True),  # no stated date: htmldate reads lxml's tree
        (_page() + _page(), False),  # the container twice
        (_page(f"<div class='related'>{_ZOOM_HTML}</div>", after=_LONG_TEXT), False),
    ],
    ids=["a pdf link", "a download script", "no stated date", "container twice", "container in a stream"],
)
def test_the_lexbor_reading_steps_aside_where_it_could_differ(html: str, page_only: bool) -> None:
    with pytest.raises(fastread.Unsure) as raised:
        fastread.read_served(fastread.parse(html), "http://gov.test/a/1.html", ZOOM, ())
    assert raised.value.page_only == page_only


def test_a_page_without_a_stated_date_takes_htmldate_s_date_of_its_url_from_either_tree() -> None:
    html = _page(info="<p>某省科技厅</p>")
    url = "http://gov.test/art/2015/3/18/art_1_2.html"
    served = fastread.read_served(fastread.parse(html), url, ZOOM, ())
    page = read_page(html, url)  # htmldate on lxml's tree
    assert served.page.head == page.head and page.head.date == "2015-03-18"


def test_a_lexbor_plan_serves_a_page_with_files_from_lxml_with_its_attachments() -> None:
    url = "http://gov.test/a/9.html"
    attachment = "<p>附件：<a href='/files/申报指南.pdf'>申报指南.pdf</a></p>"
    html = _page(_ZOOM_HTML.replace("</div>", f"{attachment}</div>"))
    plan = {
        "version": 1,
        "recipe": {
            "container": list(ZOOM),
            "drops": [],
            "reader": "lexbor",
            "tokens": ["div.zoom"],
            "length": [10, 10_000],
        },
    }
    heard: list[PlanReport] = []
    got = extract_planned(html, url, PlanOrders({template_of(url): plan}), heard.append)
    expected = extract(html, url)
    assert heard[0].reader == "lxml" and heard[0].event in ("served", "verified")
    assert agree(got, expected) is None
    assert [a.url for a in got.attachments] == [
        "http://gov.test/files/%E7%94%B3%E6%8A%A5%E6%8C%87%E5%8D%97.pdf"
    ]


# -- learning the reader ----------------------------------------------------------------------------


def test_recipes_learned_on_real_pages_read_the_same_from_lexbor_or_step_aside() -> None:
    """On the corpus's real pages, where a page yields a recipe: lexbor's reading gives the very
    document, or it says why not (a page fact: no stated date, file links). A disagreement (the
    parsers built different trees) makes the template an lxml one; it must stay rare."""
    verdicts: Counter[bool | None] = Counter()
    for url, html in _corpus_pages():
        try:
            reference = extract(html, url)
        except ExtractionError:
            continue
        candidate = learn(html, url, reference)
        if candidate is not None:
            verdicts[candidate.lexbor] += 1
    if not verdicts:
        pytest.skip("no extraction corpus here")
    assert verdicts[True] >= 5, verdicts
    assert verdicts[False] <= 2, verdicts


def test_sample_web_templates_get_lexbor_plans_that_serve_their_pages(
    sample_pages: list[tuple[str | None, str]],
) -> None:
    book = PlanBook()
    readers: Counter[str | None] = Counter()
    for url, html in sample_pages:
        assert url is not None
        host = url.split("/")[2]
        heard: list[PlanReport] = []
        tree = fastread.parse(html)
        targets = LinkTargets.of(tree)
        extract_planned(
            html, url, book.orders("s", host), heard.append, tree, [h for h, _ in targets.anchors]
        )
        for report in heard:
            book.record("s", host, report)
            if report.event in ("served", "verified"):
                readers[report.reader] += 1
    assert readers["lexbor"] >= 0.8 * sum(readers.values()) > 0, readers


# -- one walk for the links -------------------------------------------------------------------------


def test_link_targets_keep_nofollow_anchors_for_the_file_check_but_not_for_the_links() -> None:
    html = (
        "<html><head><base href='http://gov.test/dir/'>"
        "<meta http-equiv='Refresh' content='0; url=/next.html'></head><body><a href='a.html'>a</a>"
        "<a rel='nofollow' href='/f.pdf'>f</a><area href='/map.html'></body></html>"
    )
    targets = LinkTargets.of(fastread.parse(html))
    assert targets.anchors == [("a.html", True), ("/f.pdf", False), ("/map.html", True)]
    assert targets.refresh == ["/next.html"] and targets.base_href == "http://gov.test/dir/"
    links, _ = extract_links_capped(html, "http://gov.test/x.html", limit=None, targets=targets)
    assert links == ["http://gov.test/dir/a.html", "http://gov.test/map.html", "http://gov.test/next.html"]
    assert extract_links_capped(html, "http://gov.test/x.html", limit=None) == (links, 0)
