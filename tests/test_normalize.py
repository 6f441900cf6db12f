"""Stored-text normalization and the mojibake test."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.normalize import (
    COMMON_HANZI,
    GarbleStats,
    common_hanzi_ratio,
    count_pinyin_readings,
    drop_replacement_runs,
    garble_score,
    garble_stats,
    has_converted_readings,
    looks_garbled,
    normalize_text,
    strip_pinyin_readings,
    to_simplified,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
ARTICLE = (
    "为加快实施创新驱动发展战略，认真落实科技部与青海省部省会商有关工作，科技部火炬中心调研组先后赴西宁市、"
    "海西州调研青藏高原特色生物资源与中藏药产业集群和盐湖化工特色循环经济产业集群。"
)


# -- pinyin readings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("科技部曹健林副部長(zhǎng)赴青海", "科技部曹健林副部長赴青海"),
        ("調(diào)研鹽湖化工產(chǎn)業(yè)集群", "調研鹽湖化工產業集群"),
        ("創(chuàng)新驅(qū)動", "創新驅動"),
        ("綠(lǜ)色", "綠色"),
        ("中(zhong1)国", "中国"),  # tone digits
        ("部長（zhǎng）", "部長"),  # full-width parentheses
        ("使用(shǐ yòng)方法", "使用方法"),  # two syllables
    ],
)
def test_pinyin_readings_are_removed(given: str, expected: str) -> None:
    assert strip_pinyin_readings(given) == expected
    assert normalize_text(given) == expected


@pytest.mark.parametrize(
    "kept",
    [
        "丝绸之路经济带创新驱动发展试验区(以下简称新疆创新试验区)首批产业联盟",
        "《科技型中小企业评价办法》(2024)",
        "世界卫生组织(WHO)发布报告",
        "程序报错(bug)已修复",
        "He said (zhǎng) alone",  # not after a hanzi
        "价格(元)为100",
        "大学生创新创业园(俱乐部)6个",
    ],
)
def test_ordinary_parentheses_are_kept(kept: str) -> None:
    assert strip_pinyin_readings(kept) == kept


# -- reading density: a converted repost, or a text that glosses one character ---------------

CONVERTED = (
    "科技部曹健林副部長(zhǎng)赴青海格爾木調(diào)研鹽湖化工產(chǎn)業(yè)集群，" + "並參加了動(dòng)員大會。"
)


def test_a_converted_text_is_recognised_by_the_density_of_its_readings() -> None:
    assert count_pinyin_readings(CONVERTED) == 5
    assert has_converted_readings(CONVERTED)
    assert has_converted_readings(CONVERTED * 20 + ARTICLE * 3)  # diluted, still one per ~20 hanzi
    assert normalize_text(CONVERTED) == strip_pinyin_readings(CONVERTED)
    assert "(" not in normalize_text(CONVERTED)


def test_one_gloss_in_a_long_text_is_not_a_conversion_and_stays() -> None:
    glossed = ARTICLE * 3 + "古代治水传说中的鲧(gǔn)是大禹的父亲。" + ARTICLE * 3
    assert count_pinyin_readings(glossed) == 1
    assert not has_converted_readings(glossed)
    assert "鲧(gǔn)" in normalize_text(glossed)
    assert normalize_text(glossed, strip_readings=True).count("(") == 0  # the caller may decide


@pytest.mark.parametrize(
    "text",
    [
        "科技部(火炬中心)会同有关单位开展调研" * 5,
        "《科技型中小企业评价办法》(2024)" * 5,
        "世界卫生组织(WHO)发布报告，程序报错(bug)已修复，价格(元)为100。" * 5,
        "大学生创新创业园(俱乐部)6个" * 5,
    ],
)
def test_ordinary_parentheses_are_never_counted_as_readings(text: str) -> None:
    assert count_pinyin_readings(text) == 0
    assert not has_converted_readings(text)
    assert normalize_text(text) == text


def test_readings_inside_real_parentheses_go_and_the_parentheses_stay() -> None:
    given = (
        "丝绸之路经济带创新驱动发展试验区(以下簡稱新疆創(chuàng)新試驗區(qū))"
        + "首批產(chǎn)業(yè)聯(lián)盟集群"
    )
    assert normalize_text(given) == "丝绸之路经济带创新驱动发展试验区(以下簡稱新疆創新試驗區)首批產業聯盟集群"


# -- replacement characters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected", "lost"),
    [
        ("启动建设鹽\ufffd", "启动建设鹽", 1),
        ("国电龙\ufffd\ufffd\ufffd格尔木新能源", "国电龙格尔木新能源", 3),
        ("锟斤拷锟斤拷科技部发布通知", "科技部发布通知", 6),
        ("科技部发布通知", "科技部发布通知", 0),
        ("", "", 0),
    ],
)
def test_replacement_runs_are_dropped_and_counted(given: str, expected: str, lost: int) -> None:
    assert drop_replacement_runs(given) == (expected, lost)


def test_sample_texts_lose_every_reading() -> None:
    for path in sorted(SAMPLES.glob("00[0-3]_*.txt")) if SAMPLES.is_dir() else []:
        text = normalize_text(path.read_text(encoding="utf-8"))
        assert "(zh" not in text and "(chuàng)" not in text and "(yè)" not in text, path.name


# -- invisible characters, blanks, paragraphs -----------------------------------------------------


def test_zero_width_bom_and_controls_are_removed() -> None:
    assert normalize_text("\ufeff科技\u200b部\u200d发布\u2060通知\x00\x07") == "科技部发布通知"
    assert normalize_text("soft\u00adhyphen") == "softhyphen"


def test_blanks_collapse_inside_lines_and_lines_are_stripped() -> None:
    given = "\u3000\u3000为加快实施  创新驱动\t发展战略，\u00a0\u00a0提升能力。  "
    assert normalize_text(given) == "为加快实施 创新驱动 发展战略， 提升能力。"


def test_one_newline_between_paragraphs_and_no_empty_lines() -> None:
    given = "第一段。\r\n\r\n\r\n  \n第二段。\r第三段。\u2029第四段。\n"
    assert normalize_text(given) == "第一段。\n第二段。\n第三段。\n第四段。"


def test_nfc_not_nfkc_script_and_full_width_punctuation_are_kept() -> None:
    given = "會議由海西州州長主持，（一）提升能力；①加强领导：“创新”！"
    assert normalize_text(given) == given
    assert normalize_text("e\u0301") == "\u00e9"  # NFC composes


def test_empty_and_blank() -> None:
    assert normalize_text("") == ""
    assert normalize_text(" \n\u3000\n\t") == ""


# -- mojibake -------------------------------------------------------------------------------------


def test_clean_text_is_not_garbled() -> None:
    assert not looks_garbled(ARTICLE)
    assert not looks_garbled("Plain English text about science and technology policy.")
    assert not looks_garbled("")
    assert not looks_garbled(to_simplified(ARTICLE) + "部長會議決定")


def test_sample_texts_pass_despite_their_small_mojibake_stretch() -> None:
    for path in sorted(SAMPLES.glob("*.txt")) if SAMPLES.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        assert not looks_garbled(text), path.name
        assert not looks_garbled(normalize_text(text)), path.name


def test_utf8_read_as_gbk_is_garbled() -> None:
    mojibake = ARTICLE.encode("utf-8").decode("gb18030", "replace")
    assert looks_garbled(mojibake)


def test_gbk_read_as_utf8_is_garbled() -> None:
    mojibake = ARTICLE.encode("gbk").decode("utf-8", "replace")
    assert looks_garbled(mojibake)


def test_gbk_read_as_latin1_is_garbled() -> None:
    assert looks_garbled(ARTICLE.encode("gbk").decode("latin-1"))


def test_utf8_read_as_latin1_is_garbled() -> None:
    assert looks_garbled(ARTICLE.encode("utf-8").decode("cp1252", "replace"))
    assert looks_garbled("ministÃ¨re Ã©conomie rÃ©gion â€™ " * 10)


def test_big5_read_as_gbk_is_garbled() -> None:
    traditional = (
        "為加快實施創新驅動發展戰略，認真落實科技部與青海省部省會商有關工作，調研組先後赴西寧市調研產業集群。"
    )
    assert looks_garbled(traditional.encode("big5").decode("gb18030", "replace"))


def test_kunjinkao_replacement_runs_are_garbled() -> None:
    assert looks_garbled("锟斤拷锟斤拷" * 5 + ARTICLE[:20])


def test_a_few_replacement_characters_in_a_long_text_pass() -> None:
    assert not looks_garbled(ARTICLE * 5 + "\ufffd" * 3)
    assert looks_garbled(ARTICLE[:30] + "\ufffd" * 30)


def test_expected_hanzi_ratio() -> None:
    latin_only = "Lorem ipsum dolor sit amet " * 10
    assert not looks_garbled(latin_only)
    assert looks_garbled(latin_only, expected_hanzi_ratio=0.8)
    assert not looks_garbled(ARTICLE, expected_hanzi_ratio=0.8)
    assert common_hanzi_ratio(ARTICLE) > 0.8


def test_garble_score_is_bounded() -> None:
    assert garble_score("") == 0.0
    assert 0.0 <= garble_score("\ufffd" * 100) <= 1.0


def test_to_simplified_folds_script_char_by_char() -> None:
    assert to_simplified("來源：未知 點擊：次 責任編輯 關閉窗口") == "来源：未知 点击：次 责任编辑 关闭窗口"
    assert len(to_simplified("會議由海西州州長主持")) == len("會議由海西州州長主持")


# -- garble statistics: the fast counting is the plain definition -----------------------------------


def _plain_garble_stats(text: str) -> GarbleStats:
    """The definition, written plainly: every non-ASCII, non-blank character classified, both
    patterns searched on every text."""
    s = GarbleStats()
    for ch, n in Counter(re.findall(r"[^\x00-\x7f\s]", text)).items():
        cp = ord(ch)
        s.nonascii += n
        if (
            0x4E00 <= cp <= 0x9FFF
            or 0x3400 <= cp <= 0x4DBF
            or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x3FFFF
        ):
            s.hanzi += n
            s.common_hanzi += n if ch in COMMON_HANZI else 0
        elif cp == 0xFFFD or 0xE000 <= cp <= 0xF8FF or 0x80 <= cp <= 0x9F or cp >= 0xF0000:
            s.bad += n
        elif 0x370 <= cp <= 0x4FF:
            s.greek_cyrillic += n
        elif 0x3040 <= cp <= 0x30FF:
            s.kana += n
        elif 0xAC00 <= cp <= 0xD7AF:
            s.hangul += n
        elif 0xFF61 <= cp <= 0xFF9F:
            s.halfwidth_kana += n
    s.latin1_runs = sum(len(m) for m in re.findall(r"[\u00a1-\u00b6\u00b8-\u00ff]{4,}", text))
    s.signatures = len(
        re.findall(r"锟斤拷|烫烫烫|屯屯屯|[ÃÂ][\u0080-\u00bf]|â€[\u0080-\u00bf™œ˜”“¦]|ï»¿", text)
    )
    return s


#: Pieces of text of every class the statistics count: single characters (at the edges of the
#: ranges too) and every mojibake signature and Latin-1 run whole, alone or among other text.
_GARBLE_PIECES = [
    *"ab 1\n\t\u3000\xa0科技部锟斤烫屯ÃÂâ€ï»¿©¦™é·¡ÿ¶¸ÖÐÎÄ\x80\x9f\ufffd\ue000Дαあカㅎ한ｶ𠀀",
    # the edges of the hanzi blocks, inside and just outside
    *"\u4e00\u9fff\u3400\u4dbf\uf900\ufaff\U00020000\U0003ffff\u4dff\u33ff\u4dc0\ufb00\U00040000\U000f0000",
    *(
        "锟斤拷",
        "烫烫烫",
        "屯屯屯",
        "Ã©",
        "Â\x85",
        "â€™",
        "â€œ",
        "ï»¿",
        "ÖÐÎÄ",
        "¡¡¡¡",
        "ÿÿÿÿ",
        "¶¸¶¸",
        "·¸¹º",
    ),
]


@pytest.mark.parametrize("piece", [p for p in _GARBLE_PIECES if len(p) > 1])
def test_garble_stats_counts_each_signature_and_run_alone(piece: str) -> None:
    for text in (piece, f"科技{piece}部 ab"):
        assert garble_stats(text) == _plain_garble_stats(text)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_GARBLE_PIECES), max_size=30).map("".join))
def test_garble_stats_counts_what_the_plain_definition_counts(text: str) -> None:
    assert garble_stats(text) == _plain_garble_stats(text)


def test_garble_stats_on_the_samples_matches_the_plain_definition() -> None:
    texts = [ARTICLE, "ÖÐÎÄ锟斤拷Ã©â€™ï»¿"]
    if SAMPLES.is_dir():
        texts += [path.read_text(encoding="utf-8", errors="replace") for path in sorted(SAMPLES.glob("*"))]
    for text in texts:
        assert garble_stats(text) == _plain_garble_stats(text)


def _garble_stats_by_hand(text: str) -> GarbleStats:
    """The counts of garble_stats, one character at a time (the definition it must keep)."""
    s = GarbleStats()
    for ch in text:
        cp = ord(ch)
        if cp < 0x80 or ch.isspace():
            continue
        s.nonascii += 1
        if (
            0x4E00 <= cp <= 0x9FFF
            or 0x3400 <= cp <= 0x4DBF
            or 0xF900 <= cp <= 0xFAFF
            or 0x20000 <= cp <= 0x3FFFF
        ):
            s.hanzi += 1
            s.common_hanzi += ch in COMMON_HANZI
        elif cp == 0xFFFD or 0xE000 <= cp <= 0xF8FF or 0x80 <= cp <= 0x9F or cp >= 0xF0000:
            s.bad += 1
        elif 0x370 <= cp <= 0x4FF:
            s.greek_cyrillic += 1
        elif 0x3040 <= cp <= 0x30FF:
            s.kana += 1
        elif 0xAC00 <= cp <= 0xD7AF:
            s.hangul += 1
        elif 0xFF61 <= cp <= 0xFF9F:
            s.halfwidth_kana += 1
    s.latin1_runs = sum(len(m) for m in re.findall("[\u00a1-\u00b6\u00b8-\u00ff]{4,}", text))
    s.signatures = len(
        re.findall("锟斤拷|烫烫烫|屯屯屯|[ÃÂ][\u0080-\u00bf]|â€[\u0080-\u00bf™œ˜”“¦]|ï»¿", text)
    )
    return s


_GARBLE_ALPHABET = st.sampled_from(
    list("锟斤拷烫屯的人一是科技部ÃÂâ€™œ˜”“¦ï»¿©éÖÐÎÄ·\u00a0\u0085 a\n")
    + [
        chr(c)
        for c in (0x3400, 0xF900, 0x20000, 0x40000, 0xFFFD, 0xE000, 0x3B1, 0x430, 0x3042, 0xAC00, 0xFF71)
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.text(_GARBLE_ALPHABET, max_size=40) | st.text(max_size=40))
def test_garble_stats_counts_what_a_character_by_character_count_gives(text: str) -> None:
    assert garble_stats(text) == _garble_stats_by_hand(text)


def test_to_simplified_without_a_converter_returns_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenCC table (the converter missing): matching falls back to the text as it is."""
    from crawler import normalize

    monkeypatch.setattr(normalize, "_T2S", {})
    normalize._traditional.cache_clear()
    try:
        assert to_simplified("國務院發佈通知") == "國務院發佈通知"
    finally:
        monkeypatch.undo()
        normalize._traditional.cache_clear()
    assert to_simplified("國務院") == "国务院"  # the table back, folding again
