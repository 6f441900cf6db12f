"""Saved-page regressions: realistic portal pages built around the texts of shared/samples.

Each ``tests/pages/<name>.html`` is stored as a crawler would receive it (GBK or UTF-8 bytes, with
or without a charset), ``<name>.expected.txt`` is the article as a careful reader would copy it
(the body paragraphs, one per line, in the page's own script, without readings or chrome), and
``<name>.meta.json`` holds the URL and, where the page shows them, title, date, agency, author.

=============================  ==================================================================
page                           noise it carries
=============================  ==================================================================
repost_traditional_readings    Traditional with pinyin readings (000), nav, 當前位置, 來源/發布時間,
                               share row, 上一篇/下一篇, ranking box, copyright + ICP, canonical
contributor_email              投稿郵箱 + 詳情請訪問 line in the body (001), 點擊 line, 【打印】【關閉】,
                               【返回頂部】, 相關閱讀
nav_list_meta_line             DedeCMS nav list of 13 columns above the title, 來源:未知 日期 點擊 (002)
gbk_no_charset                 GBK bytes and no charset anywhere; table layout, <br> paragraphs; a
                               notice with salutation, 特此通知, issuing body and date (003 text)
disclaimer_related_footer      breadcrumb, 来源/时间 line, 】【打印, 免责声明, 相关文章, 网友评论 with a
                               comment form, copyright, 版权所有, ICP and 公网安备 footers (004)
meta_gb2312_but_utf8           UTF-8 bytes under a gb2312 meta; 发布日期/信息来源/浏览次数/字体 line, a
                               data table, an 附件 link line and the issuer/date signature
=============================  ==================================================================
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.decode import decode_html
from crawler.extract import extract_bytes

PAGES = Path(__file__).resolve().parent / "pages"
NAMES = sorted(p.name.removesuffix(".html") for p in PAGES.glob("*.html"))


def _meta(name: str) -> dict[str, object]:
    path = PAGES / f"{name}.meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def test_every_noise_kind_has_a_page() -> None:
    assert len(NAMES) >= 6
    for name in NAMES:
        assert (PAGES / f"{name}.expected.txt").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_saved_page_text_is_exactly_the_article(name: str) -> None:
    meta = _meta(name)
    body = (PAGES / f"{name}.html").read_bytes()
    expected = (PAGES / f"{name}.expected.txt").read_text(encoding="utf-8").rstrip("\n")
    url = meta.get("url")
    charset = meta.get("http_charset")
    got = extract_bytes(
        body, url if isinstance(url, str) else None, charset if isinstance(charset, str) else None
    )
    assert got.text == expected


@pytest.mark.parametrize("name", NAMES)
def test_saved_page_metadata(name: str) -> None:
    meta = _meta(name)
    url = meta.get("url")
    got = extract_bytes((PAGES / f"{name}.html").read_bytes(), url if isinstance(url, str) else None)
    for field in ("title", "published_at", "agency", "author", "lang", "canonical_url"):
        if field in meta:
            assert getattr(got, field) == meta[field], field


def test_gbk_page_without_charset_is_detected_and_lying_meta_is_overruled() -> None:
    gbk = decode_html((PAGES / "gbk_no_charset.html").read_bytes())
    assert (gbk.encoding, gbk.method) == ("gb18030", "detected")
    utf8 = decode_html((PAGES / "meta_gb2312_but_utf8.html").read_bytes())
    assert b"charset=gb2312" in (PAGES / "meta_gb2312_but_utf8.html").read_bytes()
    assert utf8.encoding == "utf-8"
