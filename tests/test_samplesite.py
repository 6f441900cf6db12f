"""The bundled sample web: content, pages, encodings, robots, reachability and hostile routes.

Everything here runs against a real server on free loopback ports, with httpx, because that is how
the crawler, the demo and the benchmarks meet the sample web.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser

from crawler.samplesite import (
    ADDED,
    ARTICLES,
    CUT,
    ORIGINAL,
    ORPHAN,
    REPOST,
    SITE_NAMES,
    RunningSite,
    SampleWeb,
    build_site,
    drip,
    fail_then,
    gzip_bomb,
    html,
    malformed_html,
    oversized,
    pdf,
    pdf_as_html,
    redirect,
    redirect_loop,
    serve_site,
    server_error,
    site_url,
    slow,
    too_many_requests,
    wrong_meta_charset,
)
from crawler.samplesite.content import (
    generated_article,
    strip_readings,
    to_simplified,
    with_added_paragraph,
    with_cut_paragraph,
)

UA = "samplesite-test/1.0"


@pytest.fixture(scope="module")
def web() -> SampleWeb:
    web = build_site()
    web.add_site("hostile")
    web.add_route("hostile", "/slow", slow(2.0))
    web.add_route("hostile", "/drip", drip(b"<html><body>drip</body></html>", interval=0.05))
    web.add_route("hostile", "/boom", server_error())
    web.add_route("hostile", "/busy", too_many_requests(retry_after=3))
    web.add_route("hostile", "/flaky", fail_then(html("<p>ok</p>"), failures=2))
    web.add_route("hostile", "/moved", redirect(site_url("most", "/kjbgz/")))
    web.add_routes("hostile", redirect_loop("/a", "/b"))
    web.add_route("hostile", "/big", oversized(10 * 2**20))
    web.add_route("hostile", "/bomb", gzip_bomb(50 * 2**20))
    web.add_route("hostile", "/doc.html", pdf())
    web.add_route("hostile", "/fake.html", pdf_as_html())
    web.add_route("hostile", "/broken.html", malformed_html())
    web.add_route("hostile", "/charset.html", wrong_meta_charset())
    return web


@pytest.fixture(scope="module")
def running(web: SampleWeb) -> Iterator[RunningSite]:
    with serve_site(web) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"User-Agent": UA}, timeout=5) as client:
        yield client


def _text(body: str) -> str:
    """Visible text of a page body, roughly: tags removed, entities decoded."""
    return unescape(re.sub(r"<[^>]+>", "", body))


# -- content --------------------------------------------------------------------------------------


def test_base_articles_are_clean_simplified_and_distinct() -> None:
    assert len(ARTICLES) >= 20
    assert len({a.id for a in ARTICLES}) == len({a.title for a in ARTICLES}) == len(ARTICLES)
    for article in ARTICLES:
        text = article.text
        assert to_simplified(text) == text, article.id  # Simplified already, no readings
        assert strip_readings(text) == text
        assert "?" not in text and "\ufffd" not in text, article.id  # no mojibake left
        assert not re.search(r"投稿|详情请|来源[:：]|当前位置|ICP", text), article.id
        text.encode("gbk")  # the GBK sites can carry every article
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", article.date)
    samples = [a for a in ARTICLES if a.id.startswith("s00")]
    assert len(samples) == 5
    assert "国电龙源格尔木新能源开发公司" in samples[0].text  # the mojibake stretch, repaired


def test_notices_keep_issuer_and_date_lines() -> None:
    notices = [a for a in ARTICLES if re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", a.paragraphs[-1])]
    assert len(notices) >= 6
    assert ("科学技术部办公厅", "2024年3月15日") in [a.paragraphs[-2:] for a in notices]


def test_same_topic_articles_are_different_texts() -> None:
    consultations = [a for a in ARTICLES if "厅市工作会商" in a.title]
    assert len(consultations) == 3

    def shingles(text: str) -> set[str]:
        return {text[i : i + 5] for i in range(len(text) - 4)}

    sets = [shingles(a.text) for a in consultations]
    for i in range(3):
        for j in range(i + 1, 3):
            assert len(sets[i] & sets[j]) / len(sets[i] | sets[j]) < 0.2


def test_variants_and_traditional_round_trip(web: SampleWeb) -> None:
    article = ARTICLES[1]
    assert len(with_added_paragraph(article).paragraphs) == len(article.paragraphs) + 1
    assert len(with_cut_paragraph(article).paragraphs) == len(article.paragraphs) - 1
    traditional = [p for p in web.articles.values() if p.traditional]
    assert len(traditional) >= 5
    for page in traditional:
        assert re.search(r"[\u4e00-\u9fff]\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ]+\)", page.display_text)
        assert to_simplified(page.display_text) == page.text


def test_generated_articles_are_distinct_and_deterministic() -> None:
    articles = [generated_article(n) for n in range(300)]
    assert len({a.title for a in articles}) == 300
    assert generated_article(7) == generated_article(7)
    for article in articles[:50]:
        article.text.encode("gbk")
        assert article.agency and article.paragraphs[0].startswith(f"{article.day.month}月")


# -- the web and its ground truth -----------------------------------------------------------------


def test_ground_truth_shape(web: SampleWeb) -> None:
    variants = {p.variant for p in web.articles.values()}
    assert variants == {ORIGINAL, REPOST, ADDED, CUT, ORPHAN}
    by_id: dict[str, list[str]] = {}
    for page in web.articles.values():
        by_id.setdefault(page.article_id, []).append(page.site)
        if page.variant != ORIGINAL:
            assert page.original in web.articles and web.articles[page.original].variant == ORIGINAL
    assert len(by_id) == len(ARTICLES)
    assert len(by_id[ARTICLES[0].id]) >= 4  # the sample-000 article, reposted on several sites
    assert web.reachable_articles() == {k for k, p in web.articles.items() if p.variant != ORPHAN}


def test_build_is_deterministic(web: SampleWeb) -> None:
    again = build_site()
    assert again.articles.keys() == web.articles.keys()
    for name in SITE_NAMES:
        for path in web.sites[name].routes:
            assert again.fetch(name, path).body == web.fetch(name, path).body, (name, path)


def test_large_web_builds_fast_and_stays_shallow() -> None:
    started = time.monotonic()
    big = build_site(900)
    assert time.monotonic() - started < 5
    assert 19_000 < len(big.articles) < 21_000
    site, path = max(big.articles)  # any generated page renders
    assert big.fetch(site, path).status == 200
    assert big.required_depth() <= 20  # the pager keeps 1,000 list pages within a Source's max_depth
    assert 1_900 < len(build_site(90).articles) < 2_100


# -- served pages ---------------------------------------------------------------------------------


def test_every_host_serves_home_and_robots(running: RunningSite, client: httpx.Client) -> None:
    for name in SITE_NAMES:
        assert client.get(running.url(name, "/")).status_code == 200
        robots = client.get(running.url(name, "/robots.txt")).text
        assert "Disallow: /private/" in robots
        assert ("Disallow: /Admin/" if name == "haixi" else "Disallow: /admin/") in robots
    assert "Crawl-delay: 1" in client.get(running.url("haixi", "/robots.txt")).text
    robots = client.get(running.url("most", "/robots.txt")).text
    assert f"Sitemap: {running.url('most', '/sitemap.xml')}" in robots  # placeholder resolved
    sitemap = client.get(running.url("most", "/sitemap.xml")).text
    orphan = next(k for k, p in running.web.articles.items() if p.variant == ORPHAN)
    assert running.url(*orphan) in sitemap


def test_every_article_page_carries_its_text(running: RunningSite, client: httpx.Client) -> None:
    for url, page in running.truth.items():
        response = client.get(url)
        assert response.status_code == 200, url
        encoding = "gbk" if page.site in ("sckjt", "haixi") else "utf-8"
        visible = _text(response.content.decode(encoding))
        for paragraph in page.display_text.split("\n"):
            assert paragraph in visible, (url, paragraph[:20])
        assert page.display_title in visible


def test_encodings_are_what_the_sites_claim(running: RunningSite, client: httpx.Client) -> None:
    def first_article(site: str) -> httpx.Response:
        key = next(k for k in running.web.articles if k[0] == site)
        return client.get(running.url(*key))

    for site in ("sckjt", "haixi"):  # GBK bytes, no charset in the HTTP header
        response = first_article(site)
        assert response.headers["content-type"] == "text/html"
        with pytest.raises(UnicodeDecodeError):
            response.content.decode("utf-8")
        response.content.decode("gbk")
    assert b'content="text/html; charset=gb2312"' in first_article("sckjt").content
    assert b"charset" not in first_article("haixi").content.lower()
    mislabelled = first_article("xjkjt")  # UTF-8 bytes, meta says gb2312, header says nothing
    assert mislabelled.headers["content-type"] == "text/html"
    assert b"charset=gb2312" in mislabelled.content
    mislabelled.content.decode("utf-8")
    most = first_article("most")
    assert most.headers["content-type"] == "text/html; charset=utf-8"
    assert most.headers.get("content-encoding") == "gzip"
    assert b'<meta charset="utf-8">' in most.content
    assert b'<base href="' + running.url("ctex", "/article/").encode() in first_article("ctex").content


def test_keep_alive_etag_and_tracking_parameters(running: RunningSite, client: httpx.Client) -> None:
    url = next(iter(running.truth))
    first = client.get(url)
    assert first.headers["content-length"] and "etag" in first.headers
    assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert client.get(url + "?utm_source=x&utm_medium=y").content == first.content
    page_two = running.url("xjkjt", "/col/col1233/index.html?uid=4567&pageNum=2")
    sorted_query = running.url("xjkjt", "/col/col1233/index.html?pageNum=2&uid=4567")  # as crawlers sort
    assert client.get(sorted_query).content == client.get(page_two).content
    assert client.get(page_two).content != client.get(running.url("xjkjt", "/col/col1233/index.html")).content
    for name in SITE_NAMES:
        assert client.get(running.url(name, "/no/such/page.html")).status_code == 404


def _canonical(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    )
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


def test_every_article_is_reachable_within_the_seed_depth(running: RunningSite, client: httpx.Client) -> None:
    """Crawl the served web like the crawler will: links resolved against <base href>, fragments
    and utm_* dropped, robots.txt obeyed, depth bounded by the sample-site seed."""
    source = running.source()
    hosts = set(source.allowed_hosts)
    robots: dict[str, RobotFileParser] = {}
    for netloc in hosts:
        parser = RobotFileParser()
        parser.parse(client.get(f"http://{netloc}/robots.txt").text.splitlines())
        robots[netloc] = parser
    depth = {_canonical(u): 0 for u in source.start_urls}
    queue = deque(depth)
    linked: set[str] = set()
    statuses: dict[str, int] = {}
    while queue:
        url = queue.popleft()
        response = client.get(url)
        statuses[url] = response.status_code
        if depth[url] >= source.max_depth or "html" not in response.headers.get("content-type", ""):
            continue
        tree = LexborHTMLParser(response.content.decode("latin-1"))  # hrefs are ASCII in every encoding
        base_node = tree.css_first("base[href]")
        base = urljoin(url, base_node.attributes["href"] or "") if base_node else url
        for anchor in tree.css("a[href]"):
            href = anchor.attributes["href"] or ""
            if href.startswith(("javascript:", "#", "mailto:")):
                continue
            target = _canonical(urljoin(base, href))
            if urlsplit(target).netloc not in hosts:
                continue
            linked.add(target)
            if target in depth or not robots[urlsplit(target).netloc].can_fetch(UA, target):
                continue
            depth[target] = depth[url] + 1
            queue.append(target)
    assert running.reachable_urls() <= set(depth)
    assert running.reachable_urls() == running.article_urls() - {
        running.url(*k) for k, p in running.web.articles.items() if p.variant == ORPHAN
    }
    disallowed = running.disallowed_urls()
    assert disallowed <= linked  # linked, so a careless crawler would fetch them
    fetched = {_canonical(f"http://{e.netloc}{e.path}") for e in running.request_log if e.user_agent == UA}
    assert not fetched & disallowed
    assert running.broken_urls() <= linked
    assert all(statuses[u] == 404 for u in running.broken_urls() if u in statuses)
    assert any(u.endswith(".pdf") for u in linked)


def test_attachments_are_pdfs(running: RunningSite, client: httpx.Client) -> None:
    assert running.web.attachments
    for site, path in running.web.attachments:
        response = client.get(running.url(site, path))
        assert response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF-")


def test_source_uses_the_bound_ports(running: RunningSite) -> None:
    source = running.source(max_depth=7)
    assert source.id == "sample-site" and source.max_depth == 7
    assert source.start_urls == [running.url(name, "/") for name in SITE_NAMES]


# -- hostile routes -------------------------------------------------------------------------------


def test_slow_and_drip(running: RunningSite, client: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        client.get(running.url("hostile", "/slow"), timeout=0.3)
    started = time.monotonic()
    with client.stream("GET", running.url("hostile", "/drip")) as response:
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if len(received) >= 6:
                break
    assert time.monotonic() - started >= 0.2  # at least 5 gaps of 50 ms


def test_errors_and_retry_after(running: RunningSite, client: httpx.Client) -> None:
    assert client.get(running.url("hostile", "/boom")).status_code == 500
    busy = client.get(running.url("hostile", "/busy"))
    assert busy.status_code == 429 and busy.headers["retry-after"] == "3"
    statuses = [client.get(running.url("hostile", "/flaky")).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]


def test_redirects(running: RunningSite, client: httpx.Client) -> None:
    moved = client.get(running.url("hostile", "/moved"))
    assert moved.status_code == 301 and moved.headers["location"] == running.url("most", "/kjbgz/")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(running.url("hostile", "/a"), follow_redirects=True)


def test_oversized_and_gzip_bomb(running: RunningSite, client: httpx.Client) -> None:
    with client.stream("GET", running.url("hostile", "/big")) as response:
        assert int(response.headers["content-length"]) == 10 * 2**20
        assert next(response.iter_raw()).startswith(b"<!DOCTYPE html>")
    with client.stream("GET", running.url("hostile", "/bomb")) as response:
        assert response.headers["content-encoding"] == "gzip"
        wire = int(response.headers["content-length"])
        assert wire < 200_000
        inflater, inflated = zlib.decompressobj(31), 0
        for chunk in response.iter_raw():  # inflate in bounded steps and give up past 8 MB, as a cap would
            data = chunk
            while data and inflated <= 8 * 2**20:
                inflated += len(inflater.decompress(data, 2**20))
                data = inflater.unconsumed_tail
    assert inflated > 8 * 2**20  # from under 200 kB on the wire (50 MB in full)


def test_wrong_types_and_broken_markup(running: RunningSite, client: httpx.Client) -> None:
    doc = client.get(running.url("hostile", "/doc.html"))
    assert doc.headers["content-type"] == "application/pdf"
    fake = client.get(running.url("hostile", "/fake.html"))
    assert fake.headers["content-type"].startswith("text/html") and fake.content.startswith(b"%PDF-")
    broken = client.get(running.url("hostile", "/broken.html"))
    assert broken.status_code == 200 and ARTICLES[0].paragraphs[0] in broken.text
    charset = client.get(running.url("hostile", "/charset.html"))
    assert charset.headers["content-type"] == "text/html" and b'charset="utf-8"' in charset.content
    assert ARTICLES[0].paragraphs[0] in charset.content.decode("gbk")


def test_request_log_records_requests(running: RunningSite, client: httpx.Client) -> None:
    before = len(running.request_log)
    client.get(running.url("ctex", "/robots.txt"))
    entry = running.request_log.snapshot()[before:][-1]
    assert (entry.netloc, entry.method, entry.path, entry.status, entry.user_agent) == (
        running.netlocs["ctex"], "GET", "/robots.txt", 200, UA,
    )  # fmt: skip
