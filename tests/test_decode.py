"""Charset choice: BOM, HTTP, meta, hint, detector, fallback, and every candidate verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler import decode
from crawler.decode import Decoded, decode_html, find_meta_charset, normalize_charset

ARTICLE = (
    "为加快实施创新驱动发展战略，认真落实科技部与青海省部省会商有关工作，科技部火炬中心调研组先后赴西宁市、"
    "海西州调研青藏高原特色生物资源与中藏药产业集群和盐湖化工特色循环经济产业集群。"
)
TRADITIONAL = (
    "為加快實施創新驅動發展戰略，認真落實科技部與青海省部省會商有關工作，調研組先後赴西寧市調研產業集群。"
)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "extraction-corpus"


def page(body: str, head: str = "") -> str:
    return f"<html><head>{head}<title>通知</title></head><body><p>{body}</p></body></html>"


def meta(charset: str) -> str:
    return f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">'


def test_bom_wins_over_everything() -> None:
    data = b"\xef\xbb\xbf" + page(ARTICLE, meta("gbk")).encode("utf-8")
    got = decode_html(data, http_charset="big5")
    assert (got.encoding, got.method) == ("utf-8", "bom")
    assert ARTICLE in got.text and not got.text.startswith("\ufeff")


def test_utf16_bom() -> None:
    got = decode_html("\ufeff".encode("utf-16-le") + page(ARTICLE).encode("utf-16-le"))
    assert got.method == "bom" and got.encoding == "utf-16-le" and ARTICLE in got.text


def test_http_charset_is_used_when_it_verifies() -> None:
    got = decode_html(page(ARTICLE).encode("gbk"), http_charset="GBK")
    assert (got.encoding, got.method) == ("gb18030", "http")
    assert ARTICLE in got.text


def test_meta_charset_is_used_when_no_header() -> None:
    got = decode_html(page(ARTICLE, meta("gb2312")).encode("gbk"))
    assert (got.encoding, got.method) == ("gb18030", "meta")


def test_html5_meta_charset_and_xml_declaration() -> None:
    assert find_meta_charset(b'<html><head><meta charset="GBK"></head>') == "GBK"
    assert find_meta_charset(b'<?xml version="1.0" encoding="gb2312"?><html>') == "gb2312"
    assert find_meta_charset(b"<html><head></head><body>charset=utf-8</body>") is None


def test_gbk_page_without_any_charset_is_detected() -> None:
    got = decode_html(page(ARTICLE * 3).encode("gbk"))
    assert (got.encoding, got.method) == ("gb18030", "detected")
    assert ARTICLE in got.text


def test_wrong_meta_charset_utf8_bytes_declared_gb2312() -> None:
    got = decode_html(page(ARTICLE, meta("gb2312")).encode("utf-8"))
    assert got.encoding == "utf-8" and ARTICLE in got.text


def test_wrong_header_charset_is_overruled_by_valid_utf8() -> None:
    got = decode_html(page(ARTICLE, meta("utf-8")).encode("utf-8"), http_charset="gbk")
    assert (got.encoding, got.method) == ("utf-8", "meta")


def test_gb2312_page_with_characters_outside_gb2312() -> None:
    # 喆, 镕 and 堃 are not in GB 2312; a strict gb2312 decode fails, GBK/GB18030 reads them
    text = ARTICLE + "农村司巡视员王喆、朱镕基、李堃出席。"
    with pytest.raises(UnicodeEncodeError):
        text.encode("gb2312")
    got = decode_html(page(text, meta("gb2312")).encode("gbk"))
    assert got.encoding == "gb18030" and "王喆、朱镕基、李堃" in got.text


def test_big5_is_read_as_big5hkscs() -> None:
    got = decode_html(page(TRADITIONAL, meta("big5")).encode("big5"))
    assert (got.encoding, got.method) == ("big5hkscs", "meta") and TRADITIONAL in got.text


def test_latin1_declared_on_a_gbk_page_falls_through() -> None:
    got = decode_html(page(ARTICLE * 2, meta("iso-8859-1")).encode("gbk"))
    assert got.encoding == "gb18030" and ARTICLE in got.text


def test_latin1_declared_on_a_latin1_page_is_kept() -> None:
    text = "Le ministère a présenté le réseau de coopération à l'économie régionale. " * 5
    html = f"<html><head>{meta('iso-8859-1')}<title>Réseau</title></head><body><p>{text}</p></body></html>"
    got = decode_html(html.encode("latin-1"))
    assert got.encoding == "cp1252" and got.method == "meta" and text in got.text


def test_meta_utf16_on_an_ascii_page_means_utf8() -> None:
    got = decode_html(page(ARTICLE, meta("utf-16")).encode("utf-8"))
    assert got.encoding == "utf-8" and ARTICLE in got.text


def test_hint_is_used_after_declarations() -> None:
    got = decode_html(page(TRADITIONAL * 2).encode("big5"), hint="big5")
    assert (got.encoding, got.method) == ("big5hkscs", "hint")


def test_a_few_damaged_bytes_do_not_lose_the_page() -> None:
    html = f"<html><head>{meta('gb2312')}</head><body>" + f"<p>{ARTICLE}</p>\n" * 20 + "</body></html>"
    data = bytearray(html.encode("gbk"))
    at = data.index("青海".encode("gbk"), 2000)
    data[at + 1] = 0x20  # a lead byte left without its trail byte, as in a damaged save
    got = decode_html(bytes(data[:-20]) + "通".encode("gbk")[:1])  # and a truncated last character
    assert got.encoding == "gb18030" and got.method == "meta"
    assert 1 <= got.text.count("\ufffd") <= 3 and ARTICLE in got.text


def test_a_gbk_fragment_inside_a_utf8_page_is_read_as_gbk() -> None:
    """A UTF-8 page that pastes a GBK fragment (an include, a footer) decodes whole: the runs
    that are not UTF-8 read as GB18030 when that gives common hanzi."""
    body = (
        (f"<html><head><meta charset='utf-8'></head><body>{'<p>' + ARTICLE + '</p>' * 1}" * 10).encode()
        + "<p>青海盐湖集团，".encode("gbk")
        + b"</p></body></html>"
    )
    got = decode_html(body)
    assert got.encoding == "utf-8" and "\ufffd" not in got.text
    assert "<p>青海盐湖集团，</p>" in got.text and ARTICLE in got.text


def test_a_cut_utf8_character_is_not_taken_for_a_gbk_one() -> None:
    """Two bytes of a cut UTF-8 character (E4 B8) are also a GBK hanzi (涓): too short to tell,
    so it stays a replacement character, which extraction drops."""
    body = f"<html><body>{'<p>' + ARTICLE + '</p>'}" * 10 + "<p>"
    got = decode_html(body.encode() + "中".encode()[:2] + b"</p></body></html>")
    assert got.encoding == "utf-8" and got.text.count("\ufffd") == 1 and "涓" not in got.text


def test_pure_ascii() -> None:
    assert decode_html(b"<html><body>hello</body></html>").text == "<html><body>hello</body></html>"
    assert decode_html(b"<p>x</p>", http_charset="gbk").encoding == "gb18030"


def test_undecodable_noise_falls_back_to_utf8_with_replacement() -> None:
    got = decode_html(bytes(range(128, 256)) * 3)
    assert isinstance(got.text, str) and got.method in ("detected", "fallback")


def test_charset_labels() -> None:
    assert normalize_charset("GB2312") == "gb18030"
    assert normalize_charset("x-gbk") == "gb18030"
    assert normalize_charset('"gbk"') == "gb18030"
    assert normalize_charset("Big5") == "big5hkscs"
    assert normalize_charset("UTF8") == "utf-8"
    assert normalize_charset("latin-1") == "cp1252"
    assert normalize_charset("base64") is None  # not a text charset
    assert normalize_charset("no-such-charset") is None
    assert normalize_charset(None) is None


def test_no_detector_call_when_a_declared_charset_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(body: bytes) -> tuple[str, str] | None:
        raise AssertionError("detector called")

    monkeypatch.setattr(decode, "_detect", boom)
    assert decode_html(page(ARTICLE, meta("gb2312")).encode("gbk")).encoding == "gb18030"
    assert decode_html(page(ARTICLE, meta("gb2312")).encode("utf-8")).encoding == "utf-8"


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=3000),
    http=st.one_of(st.none(), st.text(max_size=20)),
    hint=st.one_of(st.none(), st.text(max_size=20)),
)
def test_never_raises_on_any_bytes_or_labels(body: bytes, http: str | None, hint: str | None) -> None:
    got = decode_html(body, http, hint)
    assert isinstance(got, Decoded) and isinstance(got.text, str)
    assert got.method in ("bom", "http", "meta", "hint", "detected", "fallback")


@settings(max_examples=100, deadline=None)
@given(
    text=st.text(max_size=500),
    label=st.sampled_from(
        ["gbk", "gb2312", "big5", "utf-8", "latin-1", "utf-16", "koi8-r", "rot13", "base64", "hz"]
    ),
)
def test_never_raises_with_meta_labels(text: str, label: str) -> None:
    data = (f'<meta charset="{label}">' + text).encode("utf-8", "surrogatepass")
    assert isinstance(decode_html(data).text, str)


@pytest.mark.skipif(not (CORPUS / "index.jsonl").is_file(), reason=f"extraction corpus not found at {CORPUS}")
def test_every_corpus_page_decodes_right() -> None:
    rows = [
        json.loads(line) for line in (CORPUS / "index.jsonl").read_text(encoding="utf-8").splitlines() if line
    ]
    for row in rows:
        got = decode_html((CORPUS / "cases" / f"{row['id']}.html").read_bytes())
        expected = row["actual_encoding"]
        if expected == "unknown":  # GBK bytes with a few damaged sequences in the saved file
            assert got.encoding == "gb18030" and got.text.count("\ufffd") < 20, row["id"]
        else:
            assert got.encoding == expected, row["id"]
            assert "\ufffd" not in got.text, row["id"]
