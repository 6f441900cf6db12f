"""extract / extract_bytes: text, metadata, and the errors it may raise."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.errors import EmptyExtraction, ExtractionError, GarbledText
from crawler.extract import (
    Extraction,
    best_title,
    extract,
    extract_bytes,
    guess_lang,
    is_discussion,
    parse_date,
    parse_html,
)

PARAS = [
    "为加快实施创新驱动发展战略，认真落实科技部与青海省部省会商有关工作，8月17日至8月21日，科技部火炬中心调研组先后赴西宁市、海西州调研产业集群。",
    "近年来，青海省加快创新型产业集群建设工作，大力推进高新技术产业培育与发展，取得了显著的成效，集群企业共实现产值122亿元，同比增幅30.7%。",
    "调研组充分肯定了青海省创新型产业集群的建设成效，并针对发展中的问题提出了进一步明确建设主体、发挥骨干企业示范作用、优化创新生态等工作建议。",
]
TITLE = "火炬中心赴青海调研创新型产业集群建设工作"
INFO = "日期：2015年08月25日　来源：科技部火炬中心　作者：王明"


def portal(paras: list[str] = PARAS, *, title: str = TITLE, head: str = "", info: str = "") -> str:
    body = "".join(f"<p>{p}</p>" for p in paras)
    return f"""<html><head><meta charset="utf-8"><title>{title}_中华人民共和国科学技术部</title>{head}</head>
<body><div class="nav"><a href="/">首页</a> <a href="/kjbgz/">工作动态</a> <a href="/tztg/">通知通告</a></div>
<div class="position">您当前的位置：<a href="/">首页</a> &gt; <a href="/kjbgz/">工作动态</a> &gt; 正文</div>
<h1>{title}</h1><div class="info">{info or INFO}</div>
<div class="content">{body}</div>
<div class="tools">【<a href="javascript:print()">打印本页</a>】
【<a href="javascript:close()">关闭窗口</a>】</div>
<div class="footer">版权所有：中华人民共和国科学技术部　京ICP备05000000号</div></body></html>"""


def test_text_and_metadata_of_a_portal_page() -> None:
    got = extract(
        portal(head='<link rel="canonical" href="/kjbgz/201508/t20150825_189004.html">'),
        "https://www.most.gov.cn/x/1.html",
    )
    assert isinstance(got, Extraction)
    assert got.text == "\n".join(PARAS)
    assert got.title == TITLE
    assert got.published_at == "2015-08-25"
    assert got.agency == "科技部火炬中心"
    assert got.author == "王明"
    assert got.canonical_url == "https://www.most.gov.cn/kjbgz/201508/t20150825_189004.html"
    assert got.lang == "zh-Hans"


def test_a_stated_date_spares_htmldate_and_an_unstated_one_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import crawler.extract as extract_module

    asked: list[str | None] = []
    real = extract_module._head_date

    def counting(tree: object, url: str | None) -> str | None:
        asked.append(url)
        return real(tree, url)  # type: ignore[arg-type]

    monkeypatch.setattr(extract_module, "_head_date", counting)
    head = '<meta name="PubDate" content="2015-08-20">'
    stated = extract(portal(head=head), "https://www.most.gov.cn/x/1.html")
    assert stated.published_at == "2015-08-25" and asked == []  # the page's 日期 line decides
    unstated = extract(portal(head=head, info="来源：科技部火炬中心"), "https://www.most.gov.cn/x/2.html")
    assert unstated.published_at == "2015-08-20" and asked == ["https://www.most.gov.cn/x/2.html"]


def test_head_metadata_in_one_pass() -> None:
    """Every head field read as the page states it: the first non-empty of each, site names
    from the head only, the html element's lang before an http-equiv one."""
    html = """<html lang=" zh-CN "><head><title> </title><title>通知 - 科技厅</title>
<meta property="og:title" content=" "><meta name="og:title" content="关于印发方案的通知">
<meta property="og:site_name" content="某省科学技术厅"><meta http-equiv="Content-Language" content="en">
<meta name="ContentSource" content="科技厅办公室"><link rel="canonical" href="">
<link rel="canonical" href="/a/1.html"></head><body><meta name="SiteName" content="不在头部">
<h1> </h1><h1>关于印发方案的<em>通知</em></h1><p>正文</p></body></html>"""
    from crawler.extract import read_head

    tree = parse_html(html)
    assert tree is not None
    head = read_head(tree, "https://kjt.example.gov.cn/b/2.html", stated_date="2024-01-02")
    assert head.canonical == "https://kjt.example.gov.cn/a/1.html"
    assert head.lang == "zh-CN" and head.source == "科技厅办公室" and head.date == "2024-01-02"
    assert "关于印发方案的通知" in head.titles and "通知 - 科技厅" in head.titles


def test_agency_that_says_nothing_is_none() -> None:
    for empty in ("未知", "本站", ""):
        got = extract(portal(info=f"来源：{empty}　日期：2015-08-25"))
        assert got.agency is None
        assert got.published_at == "2015-08-25"


def test_editor_is_not_the_author() -> None:
    got = extract(portal(info="来源：科技部　责任编辑：李四"))
    assert got.author is None and got.agency == "科技部"


def test_traditional_page_keeps_its_script_and_loses_readings() -> None:
    paras = [
        "曹健林副部長(zhǎng)赴青海格爾木調(diào)研鹽湖化工產(chǎn)業(yè)集群，並參加了產業集群建設動員大會暨啟動儀式。"
        * 2
    ]
    got = extract(
        portal(
            paras, title="曹健林副部長赴青海調研鹽湖化工產業集群", info="來源：科技部　發布時間：2012-08-28"
        )
    )
    assert got.text == (
        "曹健林副部長赴青海格爾木調研鹽湖化工產業集群，並參加了產業集群建設動員大會暨啟動儀式。" * 2
    )
    assert got.lang == "zh-Hant" and got.agency == "科技部" and got.published_at == "2012-08-28"


def test_extract_bytes_decodes_first() -> None:
    html = portal().replace(
        '<meta charset="utf-8">', '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
    )
    assert extract_bytes(html.encode("gbk")).text == "\n".join(PARAS)
    assert extract_bytes(html.encode("utf-8")).text == "\n".join(PARAS)  # the meta lies
    assert extract_bytes(html.encode("gbk"), http_charset="gbk").text == "\n".join(PARAS)


def test_empty_pages_raise_empty_extraction() -> None:
    for html in (
        "",
        "   ",
        "<html></html>",
        "<html><body><div class='nav'><a href='/'>首页</a></div></body></html>",
    ):
        with pytest.raises(EmptyExtraction):
            extract(html)


def test_only_boilerplate_raises_empty_extraction() -> None:
    html = "<html><body><p>【打印】【关闭】</p><p>版权所有：某某网 京ICP备00000000号</p></body></html>"
    with pytest.raises(EmptyExtraction):
        extract(html)


def test_mojibake_raises_garbled_text() -> None:
    garbled = portal().encode("utf-8").decode("gb18030", "replace")  # UTF-8 read as GBK upstream
    with pytest.raises(GarbledText):
        extract(garbled)
    garbled = portal().encode("gbk").decode("utf-8", "replace")  # GBK read as UTF-8 upstream
    with pytest.raises(ExtractionError):
        extract(garbled)


def test_discussion_pages_keep_their_replies() -> None:
    assert is_discussion(
        parse_html("<html><body><p>x</p></body></html>"), "https://bbs.example.cn/thread-1-1.html"
    )
    assert is_discussion(
        parse_html("<html><body><p>x</p></body></html>"), "https://zhidao.baidu.com/question/1.html"
    )
    assert not is_discussion(
        parse_html("<html><body><p>x</p></body></html>"), "https://www.most.gov.cn/kjbgz/1.html"
    )


@pytest.mark.parametrize(
    ("doc_title", "og", "h1s", "expected"),
    [
        ("工商部门初定SKII广告属于虚假宣传-搜狐财经", None, [], "工商部门初定SKII广告属于虚假宣传"),
        ("马克龙星期一在莫斯科与普京会面 - 法国报纸摘要", None, [], "马克龙星期一在莫斯科与普京会面"),
        ("多维博客 » 播客热潮迅速蔓延 挑逗传统传媒业", None, [], "播客热潮迅速蔓延 挑逗传统传媒业"),
        ("通知公告｜关于开展科技活动周的通知——某某市科技局", None, [], "关于开展科技活动周的通知"),
        ("夜雨_原文、翻译及赏析_白居易诗词_读古诗词网", None, [], "夜雨"),
        ("金锺国 - 维基百科，自由的百科全书", None, [], "金锺国"),
        (
            "美官员否认伊朗直升机事故存在谋杀行为_【快资讯】",
            "美官员否认伊朗直升机事故存在谋杀行为",
            ["快资讯"],
            "美官员否认伊朗直升机事故存在谋杀行为",
        ),
        (
            "新华视界｜河北遵化：数字农机服务助力农业生产-新华网河北频道-新华网",
            None,
            ["新华视界｜河北遵化：数字农机服务助力农业生产"],
            "新华视界｜河北遵化：数字农机服务助力农业生产",
        ),
        ("劳伦斯：一个无法定义的“洛克菲勒”-搜狐财经", None, [], "劳伦斯：一个无法定义的“洛克菲勒”"),
        (None, None, [], None),
    ],
)
def test_best_title(doc_title: str | None, og: str | None, h1s: list[str], expected: str | None) -> None:
    assert best_title(doc_title, og, h1s) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024年5月6日", "2024-05-06"),
        ("2017-03-20 点击", "2017-03-20"),
        ("2021-11-25 16:26:07", "2021-11-25T16:26:07"),
        ("2024-5-6", "2024-05-06"),
        ("2024/05/06 9:30", "2024-05-06T09:30:00"),
        ("2024-13-45", None),
        ("1900-01-01", None),
        ("昨天", None),
        (None, None),
    ],
)
def test_parse_date(value: str | None, expected: str | None) -> None:
    assert parse_date(value) == expected


def test_guess_lang() -> None:
    assert guess_lang("为加快实施创新驱动发展战略，认真落实科技部工作") == "zh-Hans"
    assert guess_lang("為加快實施創新驅動發展戰略，認真落實科技部工作") == "zh-Hant"
    assert guess_lang("Innovation policy in China", "en") == "en"
    assert guess_lang("x") is None


def test_lang_of_the_shared_samples() -> None:
    """000-003 are Traditional reposts (with readings and a mojibake stretch), 004 is Simplified."""
    from pathlib import Path

    from crawler.normalize import normalize_text

    samples = Path(__file__).resolve().parents[2] / "shared" / "samples"
    for path in sorted(samples.glob("*.txt")) if samples.is_dir() else []:
        expected = "zh-Hans" if path.name.startswith("004") else "zh-Hant"
        assert guess_lang(normalize_text(path.read_text(encoding="utf-8"))) == expected, path.name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_extract_raises_nothing_but_extraction_errors(html: str) -> None:
    try:
        got = extract(html)
    except ExtractionError:
        return
    assert isinstance(got.text, str) and got.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<div>",
                "</div>",
                "<table><tr><td>",
                "</td></tr></table>",
                "<article>",
                "</article>",
                "<br>",
                "<h1>",
                "</h1>",
                "<script>",
                "</script>",
                "<!--",
                "-->",
                "来源：",
                "【打印】",
                "相关文章",
                "版权所有",
                PARAS[0],
                PARAS[1],
                "\x00",
                "\ufffd",
                "部長(zhǎng)",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_extract_survives_tag_soup(html: str) -> None:
    try:
        extract(html, "http://example.cn/a.html")
    except ExtractionError:
        pass


def test_a_page_that_runs_past_its_time_limit_is_recorded_and_the_worker_lives_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    import crawler.pipeline as pipeline
    from crawler.links import PageKind

    def pathological(html: str, url: str | None = None) -> object:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # stands in for lxml/trafilatura stuck on a page
            pass
        raise AssertionError("the time limit did not interrupt extraction")

    monkeypatch.setattr(pipeline, "extract", pathological)
    job = pipeline.PageJob(
        url="http://a.test/x",
        final_url="http://a.test/x",
        body=b"<p>x</p>",
        kind=PageKind.ARTICLE,
        time_limit=0.3,
    )
    started = time.monotonic()
    outcome = pipeline.process_page(job)
    assert time.monotonic() - started < 5
    assert (outcome.error_reason, outcome.document) == ("extract_timeout", None)
    # The same process goes on to the next page normally, with no timer left behind.
    monkeypatch.undo()
    ok = pipeline.process_page(
        pipeline.PageJob(
            url="http://a.test/y",
            final_url="http://a.test/y",
            body=b"<html><body><p>" + "科技部".encode() * 60 + b"</p></body></html>",
            kind=PageKind.ARTICLE,
            time_limit=5,
        )
    )
    assert ok.error_reason is None and ok.document is not None


def test_text_len_counts_visible_characters() -> None:
    """``_text_len`` is the non-blank length of the element's text; ``skip_code`` leaves out
    script and style (the same count as selecting the text nodes without such an ancestor)."""
    from crawler.extract import _text_len

    tree = parse_html(
        "<html><body><div id='d'>一 二<script>var x = 1;</script>三<style>p { }</style>"
        "<noscript>四<style>q</style></noscript><b> 五 </b></div></body></html>"
    )
    assert tree is not None
    div = tree.get_element_by_id("d")
    xpath = ".//text()[not(ancestor::script) and not(ancestor::style)]"
    expected = len("".join("".join(div.xpath(xpath)).split()))
    assert _text_len(div, skip_code=True) == expected == 5
    assert _text_len(div) == len("".join("".join(div.itertext()).split()))
    script = div.find("script")
    assert script is not None and _text_len(script, skip_code=True) == 0


def test_page_meta_line_in_traditional_or_simplified() -> None:
    from crawler.extract import read_page_meta

    for line in ("來源：科技部　發布日期：2015-08-25", "来源：科技部　发布时间：2015-08-25"):
        tree = parse_html(f"<html><body><p>正文</p><div><span>{line}</span></div></body></html>")
        assert tree is not None
        meta = read_page_meta(tree)
        assert meta.get("source") == "科技部" and "2015" in meta.get("date", "")


# -- titles: site names off, real dashes kept ---------------------------------------------------------


@pytest.mark.parametrize(
    ("doc_title", "site_names", "expected"),
    [
        ("关于开展科技统计工作的通知 - 科学技术部", [], "关于开展科技统计工作的通知"),
        ("关于开展科技统计工作的通知_四川省科学技术厅", [], "关于开展科技统计工作的通知"),
        ("关于开展科技统计工作的通知|川北在線", [], "关于开展科技统计工作的通知"),
        ("关于开展工作的通知 - 通知公告 - 中华人民共和国科学技术部", [], "关于开展工作的通知"),
        ("科学技术部 - 关于开展科技统计工作的通知", [], "关于开展科技统计工作的通知"),  # site first
        ("四川省科学技术厅-关于公布2024年度名单的通知", [], "关于公布2024年度名单的通知"),
        ("关于成立专家委员会的通知-某某市科技局", [], "关于成立专家委员会的通知"),
        ("习近平主持召开座谈会-中国科普网", [], "习近平主持召开座谈会"),
        ("调研报告 - 浙江智库", ["浙江智库"], "调研报告"),  # the page's declared site name
        # dashes that belong to the title
        ("中国-东盟科技合作论坛举行 - 科学技术部", [], "中国-东盟科技合作论坛举行"),
        ("京津冀-长三角协同创新论坛", [], "京津冀-长三角协同创新论坛"),
        ("坚持创新驱动——访科技部部长 - 人民网", [], "坚持创新驱动——访科技部部长"),
        ("中国—东盟技术转移中心揭牌_广西科技厅", [], "中国—东盟技术转移中心揭牌"),
        ("2024-2025年度科技计划申报通知 - 四川省科学技术厅", [], "2024-2025年度科技计划申报通知"),
        ("关于印发《科技创新券管理办法》的通知 - 国务院办公厅", [], "关于印发《科技创新券管理办法》的通知"),
    ],
)
def test_title_loses_site_names_but_not_its_own_dashes(
    doc_title: str, site_names: list[str], expected: str
) -> None:
    assert best_title(doc_title, None, [], site_names) == expected


def test_a_headline_about_a_body_is_not_taken_for_a_site_name() -> None:
    assert (
        best_title("关于成立科技伦理委员会 - 科学技术部", None, ["关于成立科技伦理委员会"])
        == "关于成立科技伦理委员会"
    )
    assert (
        best_title("浙江省人民政府 - 省政府组建数字化改革研究中心", None, [])
        == "省政府组建数字化改革研究中心"
    )


def test_a_logo_h1_naming_the_site_is_not_the_title() -> None:
    assert best_title(
        "中华人民共和国科学技术部 - 关于开展科技统计工作的通知", None, ["中华人民共和国科学技术部"]
    ) == ("关于开展科技统计工作的通知")


# -- readings and replacement characters in text and title -------------------------------------------

READINGS_PARA = (
    "曹健林副部長(zhǎng)赴青海格爾木調(diào)研鹽湖化工產(chǎn)業(yè)集群，"
    "並參加了產業集群建設動員大會暨啟動儀式。"
)


def test_a_converted_repost_loses_its_readings_in_title_and_agency_too() -> None:
    html = portal(
        [READINGS_PARA * 2],
        title="泉州高新區現代服務業(yè)創新聯(lián)盟集羣(qún)成立",
        info="來源：泉州市科學技術局(jú)　發布時間：2019-10-30",
    ).replace("_中华人民共和国科学技术部", "_川北在線")
    got = extract(html)
    assert got.title == "泉州高新區現代服務業創新聯盟集羣成立"
    assert "(" not in got.text and got.agency == "泉州市科學技術局"
    assert got.lang == "zh-Hant" and got.converted
    assert not extract(portal()).converted


def test_a_single_gloss_in_a_normal_page_is_kept() -> None:
    paras = [*PARAS, "传说中治水的鲧(gǔn)是大禹的父亲，这一典故常被用来说明科学方法的重要性。"]
    got = extract(portal(paras, title="“治水”的科学方法"))
    assert "鲧(gǔn)" in got.text and got.title == "“治水”的科学方法"


def test_replacement_characters_are_dropped_and_the_page_marked_damaged() -> None:
    paras = [PARAS[0].replace("青海省", "青海\ufffd\ufffd"), PARAS[1], PARAS[2] + "锟斤拷"]
    got = extract(portal(paras, title="火炬中心赴青\ufffd调研"))
    assert "\ufffd" not in got.text and "锟斤拷" not in got.text and "青海部省会商" in got.text
    assert got.title == "火炬中心赴青调研" and got.damaged
    assert not extract(portal()).damaged


def test_a_damaged_page_is_stored_and_its_outcome_says_so() -> None:
    from crawler.errors import DamagedText
    from crawler.links import PageKind
    from crawler.pipeline import PageJob, process_page

    body = portal([PARAS[0] + "\ufffd", PARAS[1], PARAS[2]]).encode()
    outcome = process_page(
        PageJob(url="http://a.test/1", final_url="http://a.test/1", body=body, kind=PageKind.ARTICLE)
    )
    assert outcome.document is not None and "\ufffd" not in outcome.document.text
    assert outcome.damaged and outcome.error_reason is None and DamagedText.reason == "damaged"
    clean = process_page(PageJob(url="http://a.test/2", final_url="http://a.test/2", body=portal().encode()))
    assert clean.document is not None and not clean.damaged


# -- agency, document number, dates of official documents -----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("国科发〔2024〕12号", "国科发〔2024〕12号"),
        ("国科发[2024]12号", "国科发〔2024〕12号"),
        ("国科发［2024］12号", "国科发〔2024〕12号"),
        ("国科发（2024）12号", "国科发〔2024〕12号"),
        ("国科发(2024)12号", "国科发〔2024〕12号"),
        ("国科发【2024】12号", "国科发〔2024〕12号"),
        (" 国科发 〔 2024 〕 012 号 ", "国科发〔2024〕12号"),
        ("川科规〔２０２４〕第５号", "川科规〔2024〕第5号"),
        ("國科發〔2024〕12號", "國科發〔2024〕12號"),
        ("科学技术部令第19号", "科学技术部令第19号"),
        ("无", None),
        ("", None),
        (None, None),
        ("2024年5月6日", None),
        ("关于开展科技统计工作的通知", None),
    ],
)
def test_document_number_standard_form(value: str | None, expected: str | None) -> None:
    from crawler.extract import document_number

    assert document_number(value) == expected


def test_agency_and_number_from_a_publisher_line() -> None:
    got = extract(
        portal(info="发布机构：浙江省科学技术厅　发文字号：浙科发高[2024]12号　发布日期：2024-03-12")
    )
    assert (got.agency, got.document_number, got.published_at) == (
        "浙江省科学技术厅",
        "浙科发高〔2024〕12号",
        "2024-03-12",
    )


@pytest.mark.parametrize("label", ["发布机构", "发文机关", "发布单位", "发文单位"])
def test_every_issuer_label_gives_the_agency(label: str) -> None:
    assert extract(portal(info=f"{label}：吉林省人民政府　发布时间：2022-01-28")).agency == "吉林省人民政府"


def test_the_issuer_outranks_the_source_line() -> None:
    got = extract(portal(info="来源：新华网　发文机关：国务院办公厅　日期：2024-01-05"))
    assert got.agency == "国务院办公厅"


DISCLOSURE_TABLE = """<table class="xxgk"><tr><th>索引号</th><td>11220000013544357T/2022-00426</td>
<th>主题分类</th><td>环境监测、保护与治理</td></tr>
<tr><td>发文机关：</td><td>吉林省人民政府</td><td>成文日期：</td><td>2022年01月27日</td></tr>
<tr><th>发文字号</th><td>吉政明电〔2022〕1号</td><th>发布日期</th><td>2022年01月28日</td></tr>
<tr><th>有 效 性</th><td colspan="3">有效</td></tr></table>"""
DISCLOSURE_LIST = """<ul class="xxgk"><li><span>索 引 号：</span>11220000013544357T/2022-00426</li>
<li><span>发文机关：</span>吉林省人民政府</li><li><span>发文字号：</span>吉政明电(2022)1号</li>
<li><span>成文日期：</span>2022年01月27日</li><li><span>主 题 词：</span></li></ul>"""
DISCLOSURE_DL = """<dl class="xxgk"><dt>索引号：</dt><dd>11220000013544357T/2022-00426</dd>
<dt>发布机构：</dt><dd>吉林省人民政府</dd><dt>文号：</dt><dd>吉政明电［2022］1号</dd>
<dt>成文日期：</dt><dd>2022-01-27</dd></dl>"""


def disclosure_page(block: str, *, inside: bool) -> str:
    """A policy page with its information-disclosure block above the text (``inside`` the
    article's container, where the extractor sees it as lines) or apart from it."""
    body = "".join(f"<p>{p}</p>" for p in PARAS)
    article = f"<div class='article'>{block if inside else ''}<h1>{TITLE}</h1>{body}</div>"
    return (
        f"<html><head><meta charset='utf-8'><title>{TITLE} - 吉林省人民政府</title></head><body>"
        f"<div class='crumb'>当前位置：首页 &gt; 政府信息公开</div>{'' if inside else block}{article}"
        "<div class='footer'>版权所有：吉林省人民政府办公厅　吉ICP备05000000号</div></body></html>"
    )


@pytest.mark.parametrize(
    "block", [DISCLOSURE_TABLE, DISCLOSURE_LIST, DISCLOSURE_DL], ids=["table", "list", "dl"]
)
@pytest.mark.parametrize("inside", [True, False], ids=["inside", "apart"])
def test_agency_number_and_date_from_a_disclosure_table(block: str, inside: bool) -> None:
    got = extract(disclosure_page(block, inside=inside))
    assert got.text == "\n".join(PARAS)  # the table is metadata, not text
    assert got.title == TITLE
    assert (got.agency, got.document_number) == ("吉林省人民政府", "吉政明电〔2022〕1号")
    # 发布日期 when the page has one, else 成文日期
    assert got.published_at == ("2022-01-28" if "发布日期" in block else "2022-01-27")


def test_a_document_number_under_the_headline_stays_in_the_text_and_is_read() -> None:
    got = extract(portal(["国科发区〔2024〕12号", "各有关单位：", *PARAS], info="日期：2024-03-15"))
    assert got.text.startswith("国科发区〔2024〕12号\n各有关单位：")
    assert got.document_number == "国科发区〔2024〕12号"
    assert extract(portal()).document_number is None  # no number: none made up


# -- streams of other stories ---------------------------------------------------------------------


def test_a_stream_whose_items_are_h1_headlines_is_pruned() -> None:
    """Feed portals set each recommended story below the article as an <h1>; the article's own
    headline is the one that is the title."""
    body = "".join(f"<p>{p}</p>" for p in PARAS)
    html = (
        f"<html><head><title>{TITLE}_快资讯</title></head><body>"
        f"<div class='detail'><h1>{TITLE}</h1>{body}</div>"
        "<div class='detail-content__recommend--wrapper'><h1>31岁在春晚一炮而红，观众都以为他隐退了</h1>"
        "<p>他曾是晚会上最受欢迎的演员之一，如今很少有人记得他的名字和作品。</p></div></body></html>"
    )
    got = extract(html)
    assert got.text == "\n".join(PARAS) and got.title == TITLE


def test_a_container_holding_the_headline_is_never_pruned_even_beside_a_logo_h1() -> None:
    body = "".join(f"<p>{p}</p>" for p in PARAS)
    html = (
        f"<html><head><title>{TITLE} - 科学技术部</title></head><body><h1 class='logo'>科学技术部</h1>"
        f"<div class='news related-content'><h1>{TITLE}</h1>{body}</div>"
        "<div class='footer'><p>主办单位：科学技术部　京ICP备05000000号</p><p>联系我们 网站地图 使用帮助</p>"
        "<p>地址：北京市海淀区复兴路乙15号　邮编：100862　电话：010-58881800　传真：010-58881801</p></div>"
        "</body></html>"
    )
    assert extract(html).text == "\n".join(PARAS)


def test_a_label_with_its_value_in_a_link_is_a_line_not_a_label_cell() -> None:
    from crawler.extract import read_page_meta

    tree = parse_html(
        "<html><body><div class='info'><span>2020-11-26 08:33</span> "
        "<span data-role='original-link'>来源:<a href='http://www.chinanews.com/'>中国新闻网</a></span>"
        f"</div><p>{PARAS[0]}</p><p>作者：评论区网友</p></body></html>"
    )
    assert tree is not None
    assert read_page_meta(tree) == {"source": "中国新闻网"}


def test_the_time_limit_holds_when_the_work_swallows_its_exception() -> None:
    """trafilatura falls back on any exception: the alarm's exception may be caught inside it
    and the work go on. The page still overran its time and is stopped as one that did."""
    import time as clock

    from crawler.errors import ExtractionTimeout
    from crawler.pipeline import time_limit

    def work_that_catches_everything() -> None:
        end = clock.monotonic() + 0.3
        while True:
            try:
                if clock.monotonic() > end:
                    return
                sum(range(1000))
            except Exception:
                pass

    with pytest.raises(ExtractionTimeout), time_limit(0.01):
        work_that_catches_everything()
