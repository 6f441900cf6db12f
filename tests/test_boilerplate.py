"""Each boilerplate rule on the kinds of lines it is meant for, and the content it must not touch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.boilerplate import (
    Line,
    clean,
    clean_text,
    is_breadcrumb,
    is_button_row,
    is_contribution,
    is_copyright,
    is_disclaimer,
    is_prev_next,
    is_return_link,
    is_tail_heading,
    is_teaser,
    parse_meta_line,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
P1 = "为加快实施创新驱动发展战略，全面推进大众创业、万众创新，提升广安自主创新能力，构建创新创业服务体系。"
P2 = "会议由四川省科技厅机关党委书记吴成主持，省科技厅党组书记、厅长刘东，广安市委书记候晓春到会并讲话。"
P3 = "刘东厅长强调，省科技厅将按照省委、省政府决策部署，认真落实好本次会商议题确定事项，促进广安市创新发展。"


def kept(text: str, titles: tuple[str, ...] = ()) -> list[str]:
    return [line.text for line in clean_text(text, titles).lines]


# -- breadcrumbs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "当前位置:首页> 资讯大厅> 政策法规> 地方科技政策> 西南> 四川",
        "您现在的位置：首页 >> 通知公告 >> 正文",
        "您的位置：首页>科技>正文",
        "位置：首页 > 新闻中心",
        "网易首页--> 主频道--> 商业·能源--> 电力",
        "搜狐首页 > 搜狐财经 > 产经新闻 > 正文",
    ],
)
def test_breadcrumbs(line: str) -> None:
    assert is_breadcrumb(line)


def test_breadcrumb_rule_leaves_prose_alone() -> None:
    assert not is_breadcrumb("首页是一个网站最重要的页面，它决定了用户的第一印象。")
    assert not is_breadcrumb(P1)


# -- metadata lines -------------------------------------------------------------------------------


def test_meta_line_values_are_read_before_the_line_is_dropped() -> None:
    out = clean_text(f"来源：四川省科学技术厅　时间：2016-11-18\n{P1}")
    assert [x.text for x in out.lines] == [P1]
    assert out.meta == {"source": "四川省科学技术厅", "date": "2016-11-18"}


@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ("来源: 时间:", [("来源", ""), ("时间", "")]),
        ("来源:未知 日期:2017-03-20 点击:次", [("来源", "未知"), ("日期", "2017-03-20"), ("点击", "次")]),
        (
            "发布时间：2024-01-10 09:30　　来源：四川省科学技术厅　　作者：成果转化处　　【打印】【关闭】",
            [("发布时间", "2024-01-10 09:30"), ("来源", "四川省科学技术厅"), ("作者", "成果转化处")],
        ),
        (
            "2005-04-27 14:32更新 来源：千龙新闻网 发表评论",
            [("日期", "2005-04-27 14:32"), ("来源", "千龙新闻网")],
        ),
        ("来源：太原晚报 2021-11-25 16:26:07", [("日期", "2021-11-25 16:26:07"), ("来源", "太原晚报")]),
        ("（ 责任编辑：刘林源 ）", [("责任编辑", "刘林源")]),
        ("[责任编辑:肖春芳]", [("责任编辑", "肖春芳")]),
    ],
)
def test_meta_lines_parse(line: str, pairs: list[tuple[str, str]]) -> None:
    meta = parse_meta_line(line)
    assert meta is not None and meta.pairs == pairs


def test_content_lines_that_start_with_a_label_are_not_metadata() -> None:
    assert parse_meta_line("时间：5月10日上午九时，在会议室召开全体会议。") is None
    assert (
        parse_meta_line("来源：国家统计局数据显示，2023年全国研发经费投入总量突破3.3万亿元，比上年增长8.1%。")
        is None
    )
    # a weak label alone in the body (a notice's schedule) stays; in the header it is dateline
    assert kept(f"{P1}\n时间：2024年5月10日\n{P2}") == [P1, "时间：2024年5月10日", P2]
    assert kept(f"时间：2024年5月10日\n{P1}") == [P1]


def test_traditional_meta_line_is_read_and_kept_in_its_script() -> None:
    out = clean_text(f"來源:南充市科學技術局 日期:2015-03-18 點擊:次\n{P1}")
    assert [x.text for x in out.lines] == [P1]
    assert out.meta["source"] == "南充市科學技術局"


def test_editor_lines_at_the_end_are_dropped() -> None:
    assert kept(f"{P1}\n{P2}\n（责任编辑：魏喆）\n【编辑:刘欢】") == [P1, P2]


# -- buttons, prev/next, return links -------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "】 【打印",
        "【打印】【关闭】",
        "【打印本页】 【关闭窗口】",
        "字号：大 中 小",
        "分享到：",
        "【字体：大 中 小】【打印】【关闭】",
        "分享让更多人看到",
        "【",
        "】【",
    ],
)
def test_button_rows(line: str) -> None:
    assert is_button_row(line)


def test_a_sentence_with_button_words_is_not_a_button_row() -> None:
    assert not is_button_row("请各单位打印申报书后加盖公章，关闭系统前保存数据。")


@pytest.mark.parametrize(
    "line", ["上一篇：科技部召开工作会议", "下一篇：没有了", "[1] [2] [3] 下一页", "第1页/共3页"]
)
def test_prev_next(line: str) -> None:
    assert is_prev_next(line)


def test_prev_next_label_on_its_own_line_takes_the_linked_title_with_it() -> None:
    assert kept(f"{P1}\n{P2}\n下一篇：\n火炬中心赴青海调研创新型产业集群建设工作") == [P1, P2]


@pytest.mark.parametrize("line", ["返回顶部", "【返回】", "返回搜狐，查看更多", "返回列表"])
def test_return_links(line: str) -> None:
    assert is_return_link(line)


# -- tails ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "相关文章",
        "【相关文章】",
        "相关阅读：",
        "网友评论",
        "【网友评论】",
        "热门评论",
        "推荐阅读",
        "猜你喜欢",
        "友情链接：",
    ],
)
def test_tail_headings(line: str) -> None:
    assert is_tail_heading(line)


def test_related_and_comment_tails_are_cut_with_what_follows() -> None:
    text = f"{P1}\n{P2}\n{P3}\n【相关文章】\n四川省科技厅与南充市开展厅市会商\n【网友评论】\n昵称: [查看评论]"
    assert kept(text) == [P1, P2, P3]


def test_a_tail_heading_before_most_of_the_text_is_not_a_tail() -> None:
    # a 相关报道 heading near the top, followed by the bulk of the article, is a section heading
    text = f"{P1[:20]}\n相关报道\n{P1}\n{P2}\n{P3}"
    assert kept(text) == [P1[:20], "相关报道", P1, P2, P3]


def test_a_dated_headline_list_after_the_article_goes() -> None:
    items = [
        "- 泉州市召开2015年高新技术企业培育工作推进会 评论 2015-08-04",
        "- 杭州市召开2015年科技型中小企业评价工作推进会 2015年7月24日",
        "- 玉溪市新型研发机构建设工作推进会（2015-07-19）",
    ]
    assert kept("\n".join([P1, P2, *items, "友情链接："])) == [P1, P2]


def test_list_items_that_are_sentences_or_long_stay_though_they_end_in_a_date() -> None:
    items = [
        "- 各单位于5月底前报送申报材料，逾期不予受理，截止时间为2024-05-31",
        "- 专家评审阶段，由省科技厅组织有关专家对申报项目进行评审论证，时间 2024-06-15",
        "- 结果公示：评审结果将在省科技厅网站公示，公示期为五个工作日 2024-07-01",
    ]
    assert kept("\n".join([P1, *items, P2])) == [P1, *items, P2]


def test_inline_recommendation_line() -> None:
    assert kept(f"{P1}\n推荐阅读：绥德交警：8月1日起，专项整治电动车违法行为\n{P2}") == [P1, P2]


def test_teaser_lists() -> None:
    assert is_teaser("5月21日，在加沙地带南部城市汗尤尼斯，巴勒斯坦人在废墟中捡拾物品。【详细】")
    assert is_teaser("近日，第37届大众电影百花奖各奖项入围名单公示，经全国观众投票...")
    assert not is_teaser("他说：“我们还有很多工作要做……”")
    teasers = (
        "第一条新闻的摘要内容写到这里就被截断了...\n强图打榜 2024-05-23 09:41:17\n第二条新闻的摘要...【详细】"
    )
    text = f"{P1}\n{P2}\n{teasers}"
    assert kept(text) == [P1, P2]


# -- footers, disclaimers, contributions ----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Copyright(C)2014,China Technology Exchange Information Service platform,All rights reserved.",
        "版权所有:中国技术交易所有限公司 │ 业务洽谈:010-62679553",
        "京ICP备09093569号-1 | 京公网安备 11010802026296号",
        "Copyright © 2000 - 2024 HE.NEWS.CN All Rights Reserved.",
        "主办单位：中华人民共和国科学技术部 地址：北京市海淀区复兴路乙15号",
    ],
)
def test_copyright_and_icp_lines(line: str) -> None:
    assert is_copyright(line)


def test_footer_block_is_cut_from_its_first_copyright_line() -> None:
    text = (
        f"{P1}\n{P2}\nCopyright(C)2014 All rights reserved.\n关于我们 | 联系我们 | 广告投放\n中技所微信公众号"
    )
    assert kept(text) == [P1, P2]


@pytest.mark.parametrize(
    "line",
    [
        "【免责声明】本网站部分内容来源于互联网,转载的目的在于传递和分享更多的信息,并不代表本网站赞同其观点和对其真实性负责。",
        "特别声明：以上内容(如有图片或视频亦包括在内)为自媒体平台“网易号”用户上传并发布，本平台仅提供信息存储服务。",
        "网友评论仅供其表达个人看法，并不表明网易立场。",
        "本作品为“科普中国-科学原理一点通”原创，转载时务请注明出处。",
    ],
)
def test_disclaimers(line: str) -> None:
    assert is_disclaimer(line)


def test_contributor_email_and_site_link_lines() -> None:
    assert is_contribution("投稿邮箱:chuanbeiol@163.com 详情请访问川北在线:http://dstuf.com/")
    assert is_contribution("欢迎投稿，邮箱：news@example.cn")
    assert not is_contribution("游客咨询电话：58792888")  # a phone number in a listing is content
    traditional = "投稿郵箱:chuanbeiol@163.com 詳情請訪問川北在線:http://dstuf.com/"
    assert kept(f"{P1}\n{traditional}") == [P1]


# -- menus, link lists, pipes ---------------------------------------------------------------------


def test_nav_list_above_the_article() -> None:
    nav = "\n".join(
        f"- {x}" for x in ["高新院新闻", "政策解读", "高新区新闻", "区域经济研究", "科技创新", "产业规划"]
    )
    assert kept(f"{nav}\n{P1}\n{P2}") == [P1, P2]


def test_short_menu_lines_at_the_top() -> None:
    assert kept(f"首页\n科技\n财经\n教育\n{P1}") == [P1]


def test_headline_lists_are_dropped_but_prose_lists_stay() -> None:
    links = "\n".join(
        f"- {x}"
        for x in ["各地楼市活跃度明显上升", "上海地铁辟谣有人掉进扶梯", "医保个人账户的钱怎么给家人用"]
    )
    prose = "\n".join(f"- {x}" for x in ["一是加强组织领导。", "二是强化政策落实。", "三是优化创新生态。"])
    assert kept(f"{P1}\n{links}\n{P2}") == [P1, P2]
    assert kept(f"{P1}\n{prose}\n{P2}") == [
        P1,
        "- 一是加强组织领导。",
        "- 二是强化政策落实。",
        "- 三是优化创新生态。",
        P2,
    ]


def test_table_pipes_are_removed() -> None:
    out = clean([Line(P1), Line("| 项目类别 | 支持额度 |", "row"), Line("| 重大专项 | 500万元 |", "row")])
    assert [x.text for x in out.lines] == [P1, "项目类别 支持额度", "重大专项 500万元"]


def test_long_label_tail_after_the_article() -> None:
    tail = "\n".join(
        ["诗人简介", "more>", "笔名：", "涅阳城", "诗人热力榜", "日榜", "周榜", "月榜", "总榜", "陶醉 15"]
    )
    assert kept(f"{P1}\n{P2}\n{tail}") == [P1, P2]


# -- titles ---------------------------------------------------------------------------------------


def test_headline_repeated_at_the_top_is_dropped_with_its_subtitles() -> None:
    title = "习近平主持召开深入推进长三角一体化发展座谈会"
    text = f"{title}强调\n推动长三角一体化发展取得新的重大突破\n李强蔡奇出席\n{P1}\n{P2}"
    assert kept(text, (title,)) == [P1, P2]


def test_without_a_matching_title_short_top_lines_stay() -> None:
    assert kept(f"人物画像\n{P1}", ("另一篇文章的标题",)) == ["人物画像", P1]


# -- what must stay -------------------------------------------------------------------------------


def test_official_notice_keeps_salutation_attachment_issuer_and_date() -> None:
    title = "关于组织申报2024年度重点研发计划项目的通知"
    body = [
        "各地（州、市）科技局，各有关单位：",
        "为深入实施创新驱动发展战略，现将2024年度重点研发计划项目申报工作有关事项通知如下。",
        "一、申报单位须为在自治区境内注册的企事业单位。",
        "附件：2024年度重点研发计划项目申报指南",
        "科学技术部",
        "2024年5月6日",
    ]
    text = "\n".join(
        [
            title,
            "发布日期：2024-05-06　信息来源：科学技术部　【打印】【关闭】",
            *body,
            "【打印本页】【关闭窗口】",
        ]
    )
    out = clean_text(text, (title,))
    assert [x.text for x in out.lines] == body
    assert out.meta["source"] == "科学技术部"


def test_notice_with_a_long_list_before_the_signature_keeps_it() -> None:
    names = [f"张{c}" for c in "一二三四五六七八九十"]
    body = ["经评审，现将拟推荐人选名单公示如下：", *names, "科学技术部", "2024年5月6日"]
    assert kept("\n".join([P1, *body])) == [P1, *body]


def test_sample_004_page_text_is_reduced_to_the_article() -> None:
    path = SAMPLES / "004_436c2e8bff1a4bba.txt"
    if not path.is_file():
        pytest.skip(f"sample not found: {path}")
    raw = path.read_text(encoding="utf-8").split("\n")
    title = raw[2]
    out = clean_text("\n".join(raw), (title,))
    assert [x.text.strip("\u00a0 ") for x in out.lines] == [x.strip("\u00a0 ") for x in raw[6:13]]
    rules = {rule for rule, _ in out.dropped}
    assert {"breadcrumb", "metadata", "buttons", "disclaimer", "tail", "title"} <= rules


def test_document_number_and_salutation_stay_below_the_repeated_title() -> None:
    title = "关于组织申报2024年度重点研发计划项目的通知"
    body = ["国科发区〔2024〕12号", "各有关单位：", P1]
    assert kept("\n".join([title, *body]), (title,)) == body


# -- information-disclosure tables, reaction widgets, table rule lines, repeated headlines ----------


@pytest.mark.parametrize(
    ("line", "kind", "expected"),
    [
        ("索引号 11220000013544357T/2022-00426 主题分类 环境监测、保护与治理", "row", {}),
        (
            "发文机关 吉林省人民政府 成文日期 2022年01月27日",
            "row",
            {"agency": "吉林省人民政府", "written": "2022年01月27日"},
        ),
        (
            "发文字号： 吉政明电〔2022〕1号 发布日期： 2022年01月28日",
            "row",
            {"number": "吉政明电〔2022〕1号", "date": "2022年01月28日"},
        ),
        ("索 引 号：11220000013544357T/2022-00426", "item", {}),  # a spaced label, with a colon
        ("发 布 机 构：吉林省人民政府", "item", {"agency": "吉林省人民政府"}),
        ("有效性 有效", "row", {}),  # one specific label is enough in a table row
    ],
)
def test_disclosure_rows_are_metadata(line: str, kind: str, expected: dict[str, str]) -> None:
    out = clean([Line(line, kind), Line(P1), Line(P2)])
    assert [x.text for x in out.lines] == [P1, P2]
    assert out.meta == expected


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("名称 数量 金额", "row"),  # a data table's header: generic labels
        ("分类 一等奖 二等奖", "row"),
        ("发布机构负责同志参加了会议并讲话，要求各地抓好落实。", "p"),  # prose that starts like a label
        ("索引号的编制规则另行通知。", "p"),
    ],
)
def test_content_rows_with_label_words_stay(line: str, kind: str) -> None:
    assert [x.text for x in clean([Line(line, kind), Line(P1)]).lines] == [line, P1]


@pytest.mark.parametrize(
    "line",
    [
        "不感兴趣",
        "减少或屏蔽此类内容推荐",
        "已标记为不喜欢内容，系统将减少此类推荐",
        "文章不错，点个赞吧",
        "不感兴趣 减少此类内容",
    ],
)
def test_reaction_widgets_are_dropped(line: str) -> None:
    assert kept("\n".join([P1, line, P2])) == [P1, P2]


def test_sentences_about_likes_stay() -> None:
    text = "调查显示，部分用户对推荐算法不感兴趣的原因主要是内容同质化，平台应当提供关闭个性化推荐的选项。"
    assert kept("\n".join([P1, text])) == [P1, text]


def test_a_tables_rule_line_goes_and_its_rows_stay() -> None:
    rows = [
        Line("| 项目 | 金额 |", "row"),
        Line("| --- | --- |", "row"),
        Line("| 研发投入 | 122亿元 |", "row"),
    ]
    assert [x.text for x in clean([Line(P1), *rows, Line(P2)]).lines] == [
        P1,
        "项目 金额",
        "研发投入 122亿元",
        P2,
    ]


def test_the_headline_repeated_as_a_heading_below_the_text_goes() -> None:
    title = "美官员否认伊朗直升机事故存在谋杀行为"
    lines = [Line(P1), Line(title + "播报文章", "head"), Line(P2), Line("一、总体要求", "head"), Line(P3)]
    assert [x.text for x in clean(lines, titles=[title]).lines] == [P1, P2, "一、总体要求", P3]


def test_the_footer_is_cut_even_when_the_sites_address_line_follows_it() -> None:
    """A long "地址：…　邮编：…　电话：…" line after the ICP line is the site's, not a paragraph."""
    contact = "联系人及电话：基础研究司 010-58881000；材料寄送地址：北京市海淀区复兴路乙15号，邮编：100862。"
    footer = [
        "主办单位：科学技术部　京ICP备05000000号",
        "联系我们 网站地图 使用帮助",
        "地址：北京市海淀区复兴路乙15号　邮编：100862　电话：010-58881800　传真：010-58881801",
    ]
    assert kept("\n".join([P1, P2, contact, *footer])) == [P1, P2, contact]


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("…。.【】[]详细情全文更多阅读 \n\t\u3000a字")), max_size=24))
def test_is_teaser_reads_only_the_end_and_agrees_with_the_whole_search(text: str) -> None:
    from crawler.boilerplate import _TEASER_END

    assert is_teaser(text) == bool(_TEASER_END.search(text))


_BUTTON_ALPHABET = [*"打印关闭收藏分享字号大中小【】[]|：: \u3000\u00a0A\n", "打印", "关闭", "分享到", "正文"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_BUTTON_ALPHABET), max_size=16).map("".join))
def test_button_rows_are_found_as_by_splitting_the_whole_line(text: str) -> None:
    """is_button_row stops at a first word that is no button; the verdict is the whole split's."""
    from crawler.boilerplate import _BUTTON_SET, _BUTTON_SPLIT

    tokens = [t for t in _BUTTON_SPLIT.split(text) if t]
    if tokens:
        expected = len(tokens) <= 12 and all(t.lower() in _BUTTON_SET for t in tokens)
    else:
        expected = bool(re.fullmatch(r"[\s【】\[\]|│]+", text))
    assert is_button_row(text) == expected
