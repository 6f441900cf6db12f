"""Saved-page regression for every template of the bundled sample web: each article page of each
portal template extracts to exactly its article (in the page's own script, readings removed),
with its title, date and issuing agency. The web is generated deterministically from the
package's data, so these pages are as fixed as saved files, one template per portal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from crawler.extract import extract_bytes
from crawler.normalize import strip_pinyin_readings
from crawler.samplesite import RunningSite, build_site, serve_site
from tests.webs import fetch_articles

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
    urls = [url for url, page in site.truth.items() if page.site == template]
    for served in fetch_articles(site, urls):
        url, page = served.url, served.page
        got = extract_bytes(served.body, url=url, http_charset=served.charset)
        expected = page.expected_text
        assert strip_pinyin_readings(expected) == expected
        assert got.text == expected, f"{url}: text differs"
        assert got.title == page.expected_title, url
        assert got.published_at and got.published_at[:10] == page.article.day.isoformat(), url
        if page.article.agency and not page.traditional:
            assert got.agency == page.article.agency, url
