"""Every article page of the sample web through the crawl's own page step
(:func:`crawler.pipeline.process_page`, bytes as served): the stored record carries no pinyin
reading, replacement character or boilerplate marker, and its title, agency, document number,
date and language are the ground truth's. The Traditional reposts keep their readings in the
served HTML (text and title): that is the trap the extraction must get out of."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from crawler.document import Document
from crawler.evaluate import LEAK_MARKERS
from crawler.links import PageKind
from crawler.pipeline import PageJob, PageOutcome, process_page
from crawler.samplesite import ArticlePage, build_site, serve_site
from tests.webs import fetch_articles

# A reading as a repost portal writes it: a hanzi, then pinyin letters in half- or full-width
# parentheses. Broader than the extractor's own pattern (no tone mark required), so that the
# test does not share the code's blind spots.
READING = re.compile(r"[\u3400-\u9fff][(（][a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]{1,6}[)）]")


@dataclass(frozen=True, slots=True)
class Extracted:
    url: str
    page: ArticlePage
    html: str
    outcome: PageOutcome

    @property
    def doc(self) -> Document:
        assert self.outcome.document is not None, (self.url, self.outcome.error_reason)
        return self.outcome.document


@pytest.fixture(scope="module")
def extracted() -> Iterator[list[Extracted]]:
    results = []
    with serve_site(build_site(crawl_delay=0.0)) as site:
        for served in fetch_articles(site):
            url, page, body, charset = served.url, served.page, served.body, served.charset
            job = PageJob(url=url, final_url=url, body=body, kind=PageKind.ARTICLE, http_charset=charset)
            html = body.decode(charset or ("gbk" if page.site in ("sckjt", "haixi") else "utf-8"))
            results.append(Extracted(url, page, html, process_page(job)))
    yield results


def test_the_reposts_carry_readings_in_their_html(extracted: list[Extracted]) -> None:
    traditional = [e for e in extracted if e.page.traditional]
    assert len(traditional) >= 6
    for e in traditional:
        title = re.search(r"<title>(.*?)</title>", e.html, re.S)
        assert title and READING.search(title.group(1)), e.url
        assert len(READING.findall(e.html)) >= 20, e.url


def test_no_stored_text_or_title_has_a_reading_a_replacement_or_a_leak(extracted: list[Extracted]) -> None:
    for e in extracted:
        doc = e.doc
        for field in (doc.text, doc.title or ""):
            assert not READING.search(field), (e.url, READING.search(field))
            assert "\ufffd" not in field, e.url
        seen = unicodedata.normalize("NFKC", doc.text)
        assert not [m for m in LEAK_MARKERS if m in seen], e.url
        assert not e.outcome.damaged, e.url
        assert e.outcome.converted == e.page.traditional, e.url


def test_text_title_date_and_language_are_the_ground_truth(extracted: list[Extracted]) -> None:
    for e in extracted:
        doc, page = e.doc, e.page
        expected = page.expected_text
        assert doc.text == expected, e.url
        assert doc.title == page.expected_title, e.url
        assert doc.published_at and doc.published_at[:10] == page.date, e.url
        assert doc.lang == ("zh-Hant" if page.traditional else "zh-Hans"), e.url


def test_agency_and_document_number_match_the_ground_truth_on_every_page(extracted: list[Extracted]) -> None:
    for e in extracted:
        assert e.doc.agency == e.page.expected_agency, e.url
        assert e.doc.document_number == e.page.document_number, e.url
    # Not vacuous: the numbered documents come in every form the portal prints them in.
    numbered = [e for e in extracted if e.page.document_number]
    assert len(numbered) >= 5
    printed = {e.page.document_number: e.html for e in numbered}
    assert any("[2024]" in html for html in printed.values())  # square brackets, made 〔〕
    assert any("（2024）" in html for html in printed.values())  # round brackets
    assert any("<th>文号</th>" in html for html in printed.values())  # a table cell, no colon
    assert any("<span>发文字号：</span>" in html for html in printed.values())  # a list item
    # and one only as a line of the text under its headline (no table, no label)
    assert any(e.page.document_number in e.page.text.split("\n") and "文号" not in e.html for e in numbered)
    lines = [e for e in extracted if "发布机构：" + (e.page.agency or "-") in e.html]
    assert len(lines) >= 3  # agencies named by a 发布机构 line
    assert {e.doc.agency for e in lines} >= {"阿克苏地区科学技术局", "浙江省科学技术厅"}
