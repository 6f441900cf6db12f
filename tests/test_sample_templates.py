"""Saved-page regression for every template of the bundled sample web: each article page of each
portal template extracts to exactly its article (in the page's own script, readings removed),
with its title, date and issuing agency. The web is generated deterministically from the
package's data, so these pages are as fixed as saved files, one template per portal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from crawler.extract import extract_bytes
from crawler.fetch import parse_content_type
from crawler.normalize import strip_pinyin_readings
from crawler.samplesite import ArticlePage, RunningSite, build_site, serve_site

WEB = build_site(crawl_delay=0.0)


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(WEB) as running:
        yield running


def test_every_template_is_covered(site: RunningSite) -> None:
    templates = Counter(page.site for page in site.truth.values())
    assert set(templates) == set(WEB.standard_sites) and min(templates.values()) >= 4


@pytest.mark.parametrize("template", WEB.standard_sites)
def test_each_article_page_extracts_exactly(site: RunningSite, template: str) -> None:
    pages: list[tuple[str, ArticlePage]] = [(u, p) for u, p in site.truth.items() if p.site == template]
    with httpx.Client() as client:
        for url, page in pages:
            response = client.get(url)
            _, charset = parse_content_type(response.headers.get("content-type"))
            got = extract_bytes(response.content, url=url, http_charset=charset)
            expected = page.display(page.text, readings=False) if page.traditional else page.text
            assert strip_pinyin_readings(expected) == expected
            assert got.text == expected, f"{url}: text differs"
            assert got.title == page.expected_title, url
            assert got.published_at and got.published_at[:10] == page.article.day.isoformat(), url
            if page.article.agency and not page.traditional:
                assert got.agency == page.article.agency, url
