from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler import links as links_module
from crawler.links import PageKind, Scope, extract_links
from crawler.sources import Source

PAGE = """<html><head><title>列表</title></head><body>
<a href="t20240315_1.html">一</a>
<a href="./t20240315_1.html#comments">一 again</a>
<a href="../kjbgz/t20240316_2.html?utm_source=weibo">二</a>
<a href="http://other.test/x.html">external</a>
<a href="javascript:void(0)">js</a><a href="mailto:a@b.cn">mail</a><a href="#top">top</a>
<a href="/files/report.pdf">附件</a>
<a href="/spam" rel="nofollow">nofollow</a>
<a href="http://[broken">broken</a>
<area href="/area.html">
<a>no href</a>
</body></html>"""


def test_links_are_resolved_canonical_and_unique() -> None:
    links = extract_links(PAGE, "http://www.most.gov.cn/kjbgz/index.html")
    assert links == [
        "http://www.most.gov.cn/kjbgz/t20240315_1.html",
        "http://www.most.gov.cn/kjbgz/t20240316_2.html",
        "http://other.test/x.html",
        "http://www.most.gov.cn/files/report.pdf",
        "http://www.most.gov.cn/area.html",
    ]


def test_base_href_is_honoured() -> None:
    page = '<html><head><base href="http://cdn.test/news/"></head><body><a href="a.html">a</a></body></html>'
    assert extract_links(page, "http://www.test/other/page.html") == ["http://cdn.test/news/a.html"]


def test_meta_refresh_is_a_link() -> None:
    page = '<meta http-equiv="Refresh" content="0; url=/kjbgz/index.html">'
    assert extract_links(page, "http://a.test/") == ["http://a.test/kjbgz/index.html"]


@given(st.text(max_size=500))
def test_link_extraction_never_raises(text: str) -> None:
    for link in extract_links(text, "http://a.test/"):
        assert link.startswith("http")


SOURCE = Source(
    id="most",
    name="ministry",
    start_urls=["http://www.most.gov.cn/kjbgz/"],
    allowed_hosts=["www.most.gov.cn"],
    article_patterns=[r"/t\d{8}_\d+\.html$"],
    list_patterns=[r"/kjbgz/(index(_\d+)?\.html)?$"],
    deny_patterns=[r"/admin/"],
    max_depth=2,
)


@pytest.mark.parametrize(
    ("url", "depth", "follow", "kind", "reason"),
    [
        ("http://www.most.gov.cn/kjbgz/", 0, True, PageKind.LIST, None),
        ("http://www.most.gov.cn/kjbgz/index_2.html", 1, True, PageKind.LIST, None),
        ("http://www.most.gov.cn/kjbgz/t20240315_1.html", 2, True, PageKind.ARTICLE, None),
        ("http://www.most.gov.cn/kjbgz/t20240315_1.html", 3, False, PageKind.ANY, "too_deep"),
        ("http://other.test/t20240315_1.html", 1, False, PageKind.ANY, "out_of_scope"),
        ("http://www.most.gov.cn/admin/t20240315_1.html", 1, False, PageKind.ANY, "denied"),
        ("http://www.most.gov.cn/about.html", 1, False, PageKind.ANY, "no_pattern"),
        ("http://www.most.gov.cn/files/a.pdf", 1, False, PageKind.ANY, "not_html"),
    ],
)
def test_scope_judges_by_source_rules(
    url: str, depth: int, follow: bool, kind: PageKind, reason: str | None
) -> None:
    verdict = Scope(SOURCE).judge(url, depth)
    assert (verdict.follow, verdict.kind, verdict.reason) == (follow, kind, reason)


def test_one_scope_judges_a_url_again_at_each_depth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict a URL earns on its own is remembered; the depth is judged every time."""
    monkeypatch.setattr(links_module, "MAX_CACHED_VERDICTS", 2)
    scope = Scope(SOURCE)
    article = "http://www.most.gov.cn/kjbgz/t20240315_1.html"
    for depth, follow in ((2, True), (3, False), (1, True)):
        verdict = scope.judge(article, depth)
        assert verdict.follow is follow and verdict.reason == (None if follow else "too_deep")
    assert scope.judge("http://www.most.gov.cn/about.html", 3).reason == "too_deep"
    assert scope.judge("http://www.most.gov.cn/admin/t20240315_1.html", 3).reason == "denied"
    assert scope.judge("http://other.test/a.html", 0).reason == "out_of_scope"  # the memo was full
    assert scope.judge(article, 0).kind is PageKind.ARTICLE


def test_bare_url_source_scopes_to_its_origin() -> None:
    scope = Scope(Source.from_urls(["http://127.0.0.1:8801/"], max_depth=1))
    assert scope.judge("http://127.0.0.1:8801/a/b.html", 1).follow
    assert scope.judge("http://127.0.0.1:8801/a/b.html", 1).kind is PageKind.ANY
    assert not scope.judge("http://127.0.0.1:8802/a.html", 1).follow


def test_subdomains_of_an_allowed_host() -> None:
    scope = Scope(Source(id="x", name="x", start_urls=["http://most.gov.cn/"], allowed_hosts=["most.gov.cn"]))
    assert scope.host_allowed("http://www.most.gov.cn/a")
    assert not scope.host_allowed("http://evilmost.gov.cn/a")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8801/kjbgz/a/kjbgz/a/kjbgz/a/index.html",  # relative-link loop
        "http://127.0.0.1:8801/" + "/".join(f"d{i}" for i in range(20)) + "/x.html",  # generated depth
    ],
)
def test_crawler_traps_are_not_followed(url: str) -> None:
    scope = Scope(Source.from_urls(["http://127.0.0.1:8801/"], max_depth=50))
    verdict = scope.judge(url, 1)
    assert (verdict.follow, verdict.reason) == (False, "trap")
    assert scope.judge("http://127.0.0.1:8801/kjbgz/2024/03/t20240315_1.html", 1).follow


# -- the per-origin link cache --------------------------------------------------------------------

_HREFS = st.one_of(
    st.sampled_from(
        [
            "/a/b.html",
            "/a/../b.html?utm_source=x&z=1",
            "//cdn.test/x.html",
            "//CDN.test:80/x",
            "http://other.test/p?b=2&a=1#f",
            "HTTPS://Other.test/p",
            "http:relative.html",
            "https:/one-slash",
            "a/b.html",
            "../up.html",
            "?q=1",
            "/%7Euser/%e4%b8%ad",
            "/中文/路径.html",
            "http://[broken",
            "/" + "x" * 80,
            # an empty authority resolves to the base's own path: never cached per origin
            "//",
            "//?q=1",
            "http://",
            "http://#f",
        ]
    ),
    st.text(alphabet="/:?#.%abAB12 中-_=&", max_size=30),
)
_BASES = st.sampled_from(
    [
        "http://www.test/a/b/page.html",
        "http://www.test/other/dir/",
        "https://www.test/a/b/page.html",
        "http://www.test:8080/a/",
        "http://cdn.test/news/",
    ]
)


@given(st.lists(st.tuples(_BASES, _HREFS), max_size=20), st.sampled_from([2048, 40]))
def test_cached_links_equal_uncached(pairs: list[tuple[str, str]], max_length: int) -> None:
    """The cache keys origin-only hrefs by the base's scheme and host: whichever page of the origin
    filled it, the link is what resolving and canonicalizing it against this page gives."""
    from urllib.parse import urlsplit

    from crawler import links
    from crawler.errors import InvalidURL
    from crawler.urls import canonicalize, resolve

    for base, href in pairs:
        href = href.strip()
        try:
            expected: str | None = canonicalize(resolve(base, href), max_length=max_length)
        except (InvalidURL, ValueError):
            expected = None
        assert links._canonical_link(base, urlsplit(base)[:2], href, max_length) == expected


@pytest.mark.parametrize("href", ["//", "//?q=1", "http://", "http://#f"])
def test_an_href_with_an_empty_authority_is_resolved_against_each_page(href: str) -> None:
    from crawler import links
    from crawler.urls import canonicalize, resolve

    links._LINK_CACHE.clear()
    first, second = "http://www.test/a/b/page.html", "http://www.test/other/dir/"
    for base in (first, second):
        try:
            expected: str | None = canonicalize(resolve(base, href))
        except ValueError:
            expected = None
        assert links._canonical_link(base, ("http", "www.test"), href, 2048) == expected


def test_link_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler import links

    monkeypatch.setattr(links, "LINK_CACHE_SIZE", 5)
    links._LINK_CACHE.clear()
    links._LINK_CACHE_SIZE[0] = 0
    page = "".join(f'<a href="/p{i}.html">{i}</a><a href="javascript:f({i})">{i}</a>' for i in range(12))
    assert extract_links(page, "http://a.test/") == [f"http://a.test/p{i}.html" for i in range(12)]
    assert 0 < links.link_cache_size() <= 5  # skipped hrefs are entries too
    assert extract_links(page, "http://a.test/") == [f"http://a.test/p{i}.html" for i in range(12)]
    links._LINK_CACHE.clear()


def test_links_past_the_cap_are_dropped_and_counted() -> None:
    from crawler.links import extract_links_capped

    hrefs = [f"/p{i}.html" for i in range(120)]
    page = "".join(f'<a href="{h}">x</a><a href="{h}">again</a>' for h in hrefs)  # menus repeat
    page += '<a href="javascript:void(0)">js</a><a href="mailto:a@b.cn">mail</a>'
    kept, dropped = extract_links_capped(page, "http://a.test/", limit=50)
    assert kept == [f"http://a.test{h}" for h in hrefs[:50]]
    assert dropped == 70  # distinct targets after the kept ones; repeats and mailto: not counted
    everything = extract_links(page, "http://a.test/")
    assert extract_links_capped(page, "http://a.test/", limit=None) == (everything, 0)
    assert extract_links_capped(page, "http://a.test/", limit=500)[1] == 0


def test_process_page_caps_links_by_default() -> None:
    from crawler.links import DEFAULT_MAX_LINKS_PER_PAGE
    from crawler.pipeline import PageJob, process_page

    links = "".join(f'<a href="/a/{i}.html">{i}</a>' for i in range(50_000))
    body = f"<html><body>{links}</body></html>"
    job = PageJob(url="http://a.test/", final_url="http://a.test/", body=body.encode(), kind=PageKind.LIST)
    outcome = process_page(job)
    assert len(outcome.links) == DEFAULT_MAX_LINKS_PER_PAGE == 5_000
    assert outcome.links_dropped == 45_000
    job.max_links = 10
    outcome = process_page(job)
    assert len(outcome.links) == 10 and outcome.links_dropped == 49_990
