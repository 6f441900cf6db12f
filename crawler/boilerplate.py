"""Domain rules that remove the page chrome trafilatura leaves in Chinese news and policy pages.

Trafilatura finds the article region well, but Chinese portals put their chrome *inside* that
region: a breadcrumb, a 来源/日期/点击 line, a row of 【打印】【关闭】 buttons, a 免责声明, the
copyright and ICP lines, 相关文章 and 网友评论 tails. Every rule below names one such kind of
boilerplate, one that recurs across sites; none is tuned to a single page.

The rules work on lines (a paragraph, heading, list item or table row each) and read them in
Simplified script, so that 來源/點擊 on a Traditional page are caught like 来源/点击; the text
that is kept keeps its own script. Metadata lines are read before they are dropped, so the
extractor still learns the page's 来源 (agency), 作者 and dates, and an official document's
发布机构, 发文字号 and 成文日期 (its information-disclosure table's rows, with or without colons,
are metadata lines too). What is content stays: an official notice ends with its issuing body
and date ("科学技术部" / "2024年5月6日"), and those lines are never touched; its document number
under the headline stays in the text too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise

from crawler.normalize import has_traditional, to_simplified

# -- lines ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Line:
    """One line of extracted text, the kind of block it came from, and its matching form."""

    text: str
    kind: str = "p"  # p, head, item (list item), row (table row), quote, code
    key: str = ""  # the text as the rules read it: Simplified script, trimmed

    def __post_init__(self) -> None:
        if not self.key:
            self.key = to_simplified(self.text).strip()


def make_lines(pairs: list[tuple[str, str]]) -> list[Line]:
    """Lines of (text, kind) pairs: one search for Traditional characters in all of them, not
    one per line, when none has any (most pages)."""
    if has_traditional("\n".join(text for text, _ in pairs)):
        return [Line(text, kind) for text, kind in pairs]
    return [Line(text, kind, text.strip()) for text, kind in pairs]


@dataclass(slots=True)
class Cleaned:
    """The surviving lines, the metadata read from dropped lines, and what was dropped why."""

    lines: list[Line]
    meta: dict[str, str] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (rule, line text)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


_SENTENCE_END = ("。", "！", "？", "；", "…", "!", "?", ";", "”", "」", "』", "）", ")")
# A clause ends like a sentence or with a comma: verse lines, list items that are prose.
_CLAUSE_END = (*_SENTENCE_END, "，", ",", "、")
_COLON = "[:：︰]"
_BLANK = r"[\s\u3000\u00a0]*"
_WS = re.compile(r"\s+")


def visible_len(text: str) -> int:
    """Characters of ``text`` but whitespace. str.split() drops exactly what ``\\s`` matches (both
    are str.isspace), 4x faster than re.sub."""
    return len("".join(text.split()))


def _is_prose(line: Line) -> bool:
    """A paragraph of the article: long, or a whole sentence."""
    n = visible_len(line.key)
    return n >= 40 or (n >= 12 and line.key.endswith(_SENTENCE_END))


def _is_short_label(line: Line, limit: int) -> bool:
    """A menu entry, link text, field label or counter: short, and not a clause of prose."""
    text = line.key.lstrip("-•·* ").strip()
    return 0 < visible_len(text) <= limit and not text.endswith(_CLAUSE_END)


# The rule functions below take the matching form of a line (Simplified script, see ``Line.key``).

# -- rule: breadcrumb -----------------------------------------------------------------------------

# "当前位置：首页 > 新闻中心 > 正文", "您现在的位置: 首页>>政策法规".
_BREADCRUMB_LABEL = re.compile(
    rf"^{_BLANK}[【\[]?(?:您?当前(?:的)?位置|您?现在的位置|您的位置|你的位置|你现在的位置|所在位置|当前页面|位置)"
    rf"{_BLANK}[】\]]?{_BLANK}[:：︰>]"
)
_CRUMB_SEP = re.compile(r"\s*(?:-*>>?|＞|》|»|›|→|/|\\)\s*")
_CRUMB_START = re.compile(r"^\S{0,8}(?:首页|主页|Home)", re.IGNORECASE)


def is_breadcrumb(text: str) -> bool:
    """A "you are here" trail: a 当前位置-style label, or (…)首页 followed by 2+ '>' steps."""
    if _BREADCRUMB_LABEL.match(text):
        return True
    if len(text) > 100 or not _CRUMB_START.match(text):
        return False
    parts = [p for p in _CRUMB_SEP.split(text) if p.strip()]
    return len(parts) >= 3 and all(len(p) <= 24 for p in parts)


# -- rule: metadata lines -------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Whitespace-separated words: long Chinese word lists read better one line of text each."""
    return text.split()


#: Label -> the metadata field its value feeds (None: read nothing, just drop).
META_LABELS: dict[str, str | None] = {
    **dict.fromkeys(
        _words("来源 文章来源 稿件来源 信息来源 新闻来源 消息来源 来源于 稿源 出处 转自 来自"), "source"
    ),
    **dict.fromkeys(_words("作者 撰文 撰稿 文 记者 通讯员 供稿 原创"), "author"),
    **dict.fromkeys(
        _words(
            "责任编辑 编辑 责编 审核 审校 审稿 校对 终审 初审 复审 值班编辑 编审 美编 主编 摄影 "
            "图片 摄 策划 监制 制作 实习编辑 网络编辑 本文编辑 编译 翻译"
        ),
        "editor",
    ),
    **dict.fromkeys(
        _words(
            "发布时间 发布日期 发表时间 发表日期 日期 时间 更新时间 更新日期 发稿时间 上传时间 "
            "录入时间 添加时间 发布 发表于 发布于 刊发时间"
        ),
        "date",
    ),
    # The issuer, number and dates of an official document (政府信息公开 tables and lines).
    **dict.fromkeys(_words("发布机构 发布机关 发文机关 发布单位 发文单位 发布部门 发文部门"), "agency"),
    **dict.fromkeys(_words("发文字号 发文文号 文号 发文号"), "number"),
    **dict.fromkeys(_words("成文日期 成文时间 印发日期"), "written"),
    **dict.fromkeys(
        _words(
            "索引号 主题分类 信息分类 体裁分类 组配分类 分类 服务对象 主题词 公开方式 公开范围 公开时限 "
            "有效性 时效性 效力状态 信息类别 所属主题 标题 名称"
        ),
        None,
    ),
    **dict.fromkeys(
        _words(
            "点击 点击数 点击量 点击率 点击次数 浏览 浏览次数 浏览量 阅读 阅读量 阅读次数 访问量 "
            "访问次数 人气 查看次数 阅读数 浏览数 字号 字体 字体大小 关键字 关键词 标签 Tags TAG "
            "分享到 分享"
        ),
        None,
    ),
}
# Labels that make a line metadata wherever it stands. The others (时间, 日期, 作者, 文...) also
# head content lines ("时间：5月10日上午" in a notice), so alone they count only next to another
# label or in the header zone above the first paragraph.
_STRONG_FIELDS = ("source", "editor", "agency", "number", "written")
_STRONG = frozenset(
    {k for k, v in META_LABELS.items() if v in _STRONG_FIELDS or v is None}
    | set(_words("发布时间 发布日期 发表时间 发表日期 更新时间 发稿时间 上传时间 录入时间 添加时间"))
) - set(_words("文 来自 图片 摄 制作 策划 监制 翻译 编译 分享 原创 标签 阅读 浏览 分类 标题 名称 文号"))
#: The labels of a government information-disclosure table (索引号, 发文字号, 成文日期...). Its rows
#: may come without colons ("索引号 11220000…/2022-00426 主题分类 科技"): two such labels make a
#: line a table row of metadata, not text.
DISCLOSURE_LABELS: frozenset[str] = frozenset(
    {k for k, v in META_LABELS.items() if v in ("agency", "number", "written")}
    | set(_words("索引号 主题分类 信息分类 体裁分类 组配分类 分类 服务对象 主题词 公开方式 公开范围"))
    | set(_words("公开时限 有效性 时效性 效力状态 信息类别 所属主题 标题 名称 发布日期"))
)

_LABEL_ALT = "|".join(sorted(map(re.escape, META_LABELS), key=len, reverse=True))
_META_PAIR = re.compile(rf"(?<![\u4e00-\u9fff])({_LABEL_ALT}){_BLANK}{_COLON}")
_BRACKETS = re.compile(r"^[\s【\[(（〔<《]+|[\s】\])）〕>》]+$")
_DATE_TEXT = r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?"
# A dateline in front of the fields ("2005-04-27 14:32更新 来源：…") and button words behind
# them ("… 发表评论 查看评论") belong to the same header line.
_LEADING_DATE = re.compile(rf"^\s*({_DATE_TEXT})\s*(?:更新|发布|发表)?\s*")
_TRAILING_BUTTONS = re.compile(
    r"(?:\s*[【\[]?(?:发表评论|查看评论|我要评论|评论|打印|关闭|收藏|分享|推荐|纠错|大|中|小)[】\]]?)+\s*$"
)
_VALUE_DATE = re.compile(_DATE_TEXT)


@dataclass(slots=True)
class MetaLine:
    pairs: list[tuple[str, str]]
    strong: bool


# A label set with blanks between its characters to align a table ("索 引 号：", "标　　题：").
_SPACED_LABEL = re.compile(
    r"(?<![\u4e00-\u9fff])[\u4e00-\u9fff](?:[ \u3000\u00a0]+[\u4e00-\u9fff]){1,3}(?=[ \u3000\u00a0]*[:：︰])"
)


def _join_spaced_label(match: re.Match[str]) -> str:
    joined = _WS.sub("", match.group(0))
    return joined if joined in META_LABELS else match.group(0)


#: The disclosure labels as a regex alternation, longest first, blanks allowed between characters.
DISCLOSURE_ALT = "|".join(
    "[ \u3000\u00a0]*".join(map(re.escape, label))
    for label in sorted(DISCLOSURE_LABELS, key=len, reverse=True)
)
_DISCLOSURE_START = re.compile(rf"[ 　|│]*(?:{DISCLOSURE_ALT})")
_DISCLOSURE_CELL = re.compile(rf"(?<![\u4e00-\u9fff])({DISCLOSURE_ALT}){_BLANK}{_COLON}?(?=\s|$|[:：︰])")


#: Labels too common in data tables ("名称 数量 金额") to make a one-label row metadata.
_GENERIC_LABELS = frozenset(_words("标题 名称 分类"))


def parse_disclosure_row(text: str, min_labels: int = 2) -> MetaLine | None:
    """A row of an information-disclosure table read as text, labels with or without colons
    ("索引号 11220000…/2022-00426 主题分类 科技", "发文机关 吉林省人民政府 成文日期 2022年01月27日"):
    it starts with such a label and has ``min_labels`` of them (a table row, known to be one,
    may have a single specific label: "有效性 有效"). None otherwise."""
    if not _DISCLOSURE_START.match(text):  # most lines fail here, at their first character
        return None
    matches = list(_DISCLOSURE_CELL.finditer(text))
    if len(matches) < min_labels or not matches or text[: matches[0].start()].strip(" 　|│"):
        return None
    if len(matches) == 1 and _WS.sub("", matches[0].group(1)) in _GENERIC_LABELS:
        return None
    pairs: list[tuple[str, str]] = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[m.end() : end].strip(" 　\t|│:：")
        if visible_len(value) > 80:
            return None
        pairs.append((_WS.sub("", m.group(1)), value))
    return MetaLine(pairs, True)


def parse_meta_line(text: str) -> MetaLine | None:
    """Split a line made only of ``label：value`` pairs (plus a leading dateline and trailing
    buttons); None if anything else is on it. A date inside a value becomes its own pair."""
    core = _BRACKETS.sub("", text.strip())
    if not core or visible_len(core) > 120:
        return None
    if ("：" in core or ":" in core) and (" " in core or "\u3000" in core or "\u00a0" in core):
        core = _SPACED_LABEL.sub(_join_spaced_label, core)
    pairs: list[tuple[str, str]] = []
    lead = _LEADING_DATE.match(core)
    if lead:
        pairs.append(("日期", lead.group(1)))
        core = core[lead.end() :]
    if _META_PAIR.search(core):
        core = _TRAILING_BUTTONS.sub("", core)
    matches = list(_META_PAIR.finditer(core))
    if not matches or core[: matches[0].start()].strip(" 　|│/【[(（"):
        return None
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(core)
        value = core[m.end() : end].strip(" 　\t|│/【】[]()（）,，")
        if visible_len(value) > 40 or value.endswith(("。", "！", "？")):
            return None  # a sentence, not a field value
        dated = _VALUE_DATE.search(value)
        if dated and META_LABELS.get(m.group(1)) not in ("date", "written"):
            pairs.append(("日期", dated.group(0)))
            value = (value[: dated.start()] + " " + value[dated.end() :]).strip()
        pairs.append((m.group(1), value))
    strong = any(label in _STRONG for label, _ in pairs) or len(pairs) >= 2
    return MetaLine(pairs, strong)


_DATE_ONLY = re.compile(
    rf"^\s*[(（\[]?\s*{_DATE_TEXT}\s*(?:星期[一二三四五六日天]|周[一二三四五六日天])?\s*[)）\]]?\s*$"
)
_CN_DATE = re.compile(
    r"^\s*(?:\d{4}|[〇零一二三四五六七八九○]{4})\s*年\s*[\d一二三四五六七八九十]{1,3}\s*月"
    r"\s*[\d一二三四五六七八九十]{1,3}\s*日\s*$"
)
_RELATIVE_TIME = re.compile(
    r"^\s*(?:\d+\s*(?:秒|分钟|小时|天|周|个月|年)前|刚刚|昨天|前天|今天)(?:\s*\d{1,2}:\d{2})?\s*$"
)


def is_date_line(text: str) -> bool:
    """A line that is only a date (and time): a dateline, or the date under a signature."""
    return bool(_DATE_ONLY.match(text) or _CN_DATE.match(text))


def is_relative_time(text: str) -> bool:
    """ "3天前", "刚刚", "昨天 12:30": the timestamp of a post or comment, never prose."""
    return bool(_RELATIVE_TIME.match(text))


# -- rule: button rows ----------------------------------------------------------------------------

_BUTTON_WORDS = _words(
    "打印 打印本页 打印此文 打印文章 打印正文 关闭 关闭窗口 关闭本页 关闭此页 收藏 加入收藏 "
    "收藏本页 分享 分享到 分享至 推荐 推荐给朋友 推荐给好友 发送给好友 转发 纠错 我要纠错 "
    "我要评论 评论 关注 点赞 顶部 返回顶部 回到顶部 TOP 字号 字体 大 中 小 默认 放大 缩小 "
    "保存 复制链接 下载 举报 更多 扫一扫 微信扫一扫 手机看 手机阅读 邮件 告诉好友 Email RSS "
    "订阅 分享让更多人看到 转播到腾讯微博 复制网址 微信 微博 QQ空间 QQ 新浪微博 腾讯微博 "
    "朋友圈 打开APP 打开App 查看原文 阅读原文 收起 展开 全文 阅读全文 播报文章 页面功能 "
    "我来说两句 不喜欢 点个赞"
)
_BUTTON_SPLIT = re.compile(r"[\s【】\[\]()（）|│/·•、:：︰,，>＞<-]+")
_BUTTON_SET = frozenset(w.lower() for w in _BUTTON_WORDS)
_BUTTON_TOKEN = re.compile(r"[^\s【】\[\]()（）|│/·•、:：︰,，>＞<-]+")  # what _BUTTON_SPLIT leaves


def is_button_row(text: str) -> bool:
    """A row of page buttons: 【打印】【关闭】, 字号：大 中 小, 分享到：, "】【打印"."""
    first = _BUTTON_TOKEN.search(text)
    if first is not None and first.group().lower() not in _BUTTON_SET:
        return False  # a paragraph: its first word is no button (not splitting all of it)
    tokens = [t for t in _BUTTON_SPLIT.split(text) if t]
    if not tokens:
        return bool(re.fullmatch(r"[\s【】\[\]|│]+", text))
    return len(tokens) <= 12 and all(t.lower() in _BUTTON_SET for t in tokens)


# -- rule: previous / next article ----------------------------------------------------------------

_PREV_NEXT = re.compile(
    rf"^{_BLANK}[【\[]?(?:上一篇|下一篇|上一条|下一条|上一页|下一页|上篇|下篇|前一篇|后一篇|上一则|下一则)"
)
_PREV_NEXT_LABEL = re.compile(rf"{_PREV_NEXT.pattern}{_BLANK}{_COLON}?{_BLANK}$")
_PAGER = re.compile(r"^[\s\[\]【】()（）\d|上下一页首尾共第末前后跳转到:：>＞<＜«»\-/]+$")


def is_prev_next(text: str) -> bool:
    """上一篇/下一篇 links and page-number rows ("[1] [2] [3]", "上一页 1 2 下一页")."""
    if _PREV_NEXT.match(text):
        return True
    return bool(text) and bool(_PAGER.match(text)) and bool(re.search(r"\d|页", text))


# -- rule: tails (related articles, comments) -----------------------------------------------------

_TAIL_HEADING = re.compile(
    r"^[\s【\[■●◆]*(?:相关(?:文章|阅读|新闻|链接|报道|推荐|内容|专题|资讯)|延伸阅读|推荐阅读|热门推荐|热点推荐|"
    r"精彩推荐|为你推荐|为您推荐|猜你喜欢|你可能(?:还)?(?:感兴趣|喜欢)|网友评论|发表评论|热门评论|最新评论|"
    r"最热评论|我要评论|我来说两句|评论列表|全部评论|精彩评论|已有\d+条评论|更多精彩|更多阅读|更多新闻|今日推荐|"
    r"热门文章|热门新闻|热点新闻|排行榜|点击排行|新闻排行|阅读排行|图片新闻|最新文章|最新新闻|往期回顾|大家都在看|"
    r"热门阅读|看了本文的人还看了|友情链接)"
    r"[\s】\]]*(?:[:：︰]|>>|»|更多)?[\s\d()（）>》»更多]*$"
)
_INLINE_RECOMMEND = re.compile(
    r"^[\s【\[]*(?:推荐阅读|相关阅读|延伸阅读|相关新闻|相关链接|相关文章|往期推荐|相关报道)[\s】\]]*[:：︰]"
)


def is_tail_heading(text: str) -> bool:
    """The heading of a related-articles or comments block."""
    return bool(_TAIL_HEADING.match(text))


def is_inline_recommendation(text: str) -> bool:
    """ "推荐阅读：<another article's title>" on one line."""
    return bool(_INLINE_RECOMMEND.match(text))


# -- rule: teasers of other articles --------------------------------------------------------------

_TEASER_END = re.compile(r"(?:(?<!…)…|\.{3}|。{3})\s*$|[【\[](?:详细|详情|全文|更多|阅读全文)[】\]]\s*$")


#: The end of a line the teaser pattern is tried on (see is_teaser).
_TEASER_TAIL = 10


def is_teaser(text: str) -> bool:
    """A truncated summary of another article: ends in "..."/"…" (not the "……" of prose) or in
    a 【详细】-style link."""
    # Only the end can match: the last characters of the text without its trailing blanks (a
    # match is at most 6 characters, and the lookbehind sees the one before it)
    return bool(_TEASER_END.search(text.rstrip()[-_TEASER_TAIL:]))


# -- rule: copyright, disclaimer, ICP footers -----------------------------------------------------

# Two patterns: a case-insensitive regex is 4x slower on CJK text (every character folded), so
# the Latin words are matched case-sensitively in the lowered text.
_COPYRIGHT = re.compile(
    r"版权所有|版权归|©|公网安备|"
    r"增值电信业务经营许可证|信息网络传播视听节目许可证|互联网新闻信息服务许可证|违法和不良信息举报|不良信息举报|"
    r"网站标识码|网站识别码|主办单位[:：]|承办单位[:：]|技术支持[:：]|建议使用.{0,20}浏览器|分辨率.{0,10}浏览"
)
_COPYRIGHT_LATIN = re.compile(r"copyright|\(c\)\s*\d{4}|all\s+rights\s+reserved|icp[备证]|icp\s*\d")
_DISCLAIMER = re.compile(
    r"免责声明|特别声明[:：]|郑重声明|版权声明|"
    r"不代表(?:本[站网台刊报]|本网站|本平台|[\u4e00-\u9fff]{1,6}(?:网|平台|公司))(?:的)?(?:观点|立场)|"
    r"(?:仅|只)代表作者(?:本人|个人)?(?:的)?(?:观点|立场)|仅供(?:其)?表达个人看法|本平台仅提供信息存储服务|"
    r"如(?:有|涉及)侵权|侵权(?:请)?(?:联系|删除)|转载请注明|未经(?:授权|许可|书面许可)?不得转载|"
    r"转载(?:务)?请(?:务必)?注明|转载时(?:务)?请注明|禁止转载|谢绝转载|严禁转载|"
    r"The content above .{0,40}uploaded|is a social media platform|only provides information storage"
)
#: Every disclaimer holds one of these: found by a regex of plain words 8x faster than the
#: whole pattern, which then runs only on the few lines that hold one.
_DISCLAIMER_WORDS = re.compile("声明|代表|仅供|信息存储|侵权|转载|uploaded|social media|information storage")


def is_copyright(text: str) -> bool:
    """版权所有, Copyright, ©, ICP备/公网安备 numbers, licence and 举报 lines of a site footer."""
    if visible_len(text) > 200:  # the cheap test first
        return False
    return bool(_COPYRIGHT.search(text) or _COPYRIGHT_LATIN.search(text.lower()))


def is_disclaimer(text: str) -> bool:
    """免责声明, "不代表本网观点", 转载 notices and platform statements."""
    if visible_len(text) > 300:
        return False
    return _DISCLAIMER_WORDS.search(text) is not None and _DISCLAIMER.search(text) is not None


# -- rule: contributions, e-mail, site links ------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)[\w./?%&=#:~+-]+", re.IGNORECASE)
_CONTRIB = re.compile(
    r"投稿|来稿|爆料|报料|线索|联系邮箱|邮箱[:：]|E-?mail[:：]|详情请(?:访问|登录|点击)|欢迎访问|请访问|"
    r"扫码关注|扫描二维码|关注(?:我们的)?(?:微信)?公众号",
    re.IGNORECASE,
)


def is_contribution(text: str) -> bool:
    """投稿/爆料 notices with an address, contributor e-mail and "详情请访问 <site>" lines."""
    if visible_len(text) > 120:
        return False
    return bool(_CONTRIB.search(text)) and bool(_EMAIL.search(text) or _URL.search(text))


# -- rule: "return" links -------------------------------------------------------------------------

_RETURN = re.compile(
    r"^[\s【\[(（]*(?:返回|回到)(?:顶部|首页|列表|上页|上一页|上级|目录|栏目|频道|主页|原文|搜狐|网易|新浪|腾讯)?"
    r"[^。！？]{0,12}(?:[】\])）]|$|，?查看更多)"
)


def is_return_link(text: str) -> bool:
    """返回顶部, 【返回】, 返回搜狐，查看更多."""
    return bool(_RETURN.match(text)) and visible_len(text) <= 24


# -- rule: reader-reaction widgets ---------------------------------------------------------------

# The like/dislike bar of feed and news portals ("不感兴趣 减少此类内容", "已标记为不喜欢内容，系统将
# 减少此类推荐", "文章不错，点个赞吧"): it sits under the story, and says nothing of it.
_REACTION = re.compile(
    r"减少(?:或屏蔽)?此类|屏蔽此类|此类(?:内容)?推荐|不感兴趣|标记为不喜欢|文章不错|点个赞|赞一个|"
    r"觉得(?:不错|有用|好看)就?(?:点|赞|分享)|内容(?:有用|没用)吗"
)

_REACTION_CHARS = frozenset("类趣欢错赞得用")


def is_reaction(text: str) -> bool:
    """A line of a like/dislike or "was this useful" widget."""
    if len(text) > 60 or _REACTION_CHARS.isdisjoint(text):  # one character of every phrase
        return False
    return visible_len(text) <= 40 and bool(_REACTION.search(text))


# -- the pipeline ---------------------------------------------------------------------------------

_PIPES = re.compile(r"\s*[|│┃]\s*")
# The rule line trafilatura writes under a table's first row ("| --- | --- |"): markup, not text.
_RULE_ROW = re.compile(r"^[\s|│┃:]*-{3,}[\s|│┃:-]*$")


def tidy(line: Line) -> Line:
    """Table rows and table-layout leftovers lose their pipes (cells joined by a space); the
    header rule line under a table's first row goes."""
    text = line.text
    if "|" in text or "│" in text or "┃" in text:
        text = "" if _RULE_ROW.match(text) else _PIPES.sub(" ", text)
    text = text.strip()
    return line if text == line.text else Line(text, line.kind)


def clean(lines: Iterable[Line | str], titles: Iterable[str] = ()) -> Cleaned:
    """Apply every rule; ``titles`` are the page's title strings (a leading copy is dropped)."""
    items = [tidy(x if isinstance(x, Line) else Line(x)) for x in lines]
    items = [x for x in items if x.key]
    out = Cleaned([])
    items = _cut_footer(items, out)
    first_prose = next((i for i, x in enumerate(items) if _is_prose(x)), len(items))

    kept: list[Line] = []
    previous: str | None = None
    for i, line in enumerate(items):
        rule = _line_rule(line, out, header=i < first_prose)
        if rule is None and previous == "prev_next" and _PREV_NEXT_LABEL.match(items[i - 1].key):
            rule = "prev_next" if not _is_prose(line) else None  # the linked title of "下一篇："
        if rule:
            out.dropped.append((rule, line.text))
        else:
            kept.append(line)
        previous = rule

    stages: tuple[Callable[[list[Line], Cleaned], list[Line]], ...] = (
        _cut_tails,
        _drop_teasers,
        _drop_link_lists,
        _drop_top_nav,
        _drop_trailing_labels,
    )
    for stage in stages:
        kept = stage(kept, out)
    out.lines = _drop_title_lines(kept, list(titles), out)
    return out


def clean_text(text: str, titles: Iterable[str] = ()) -> Cleaned:
    """:func:`clean` on plain text, one line per paragraph; a "- " prefix marks a list item."""
    lines = [Line(t, "item" if t.lstrip().startswith(("- ", "* ", "• ")) else "p") for t in text.split("\n")]
    return clean(lines, titles)


def _line_rule(line: Line, out: Cleaned, header: bool) -> str | None:
    """The name of the rule that drops this line, or None to keep it."""
    key = line.key
    if is_breadcrumb(key):
        return "breadcrumb"
    meta = parse_meta_line(key)
    if meta is not None and (meta.strong or header):
        _read_meta(meta, line.text, out)
        return "metadata"
    row = parse_disclosure_row(key, 1 if line.kind == "row" else 2)
    if row is not None:
        _read_meta(row, line.text, out)
        return "metadata"
    if header and is_date_line(key):
        out.meta.setdefault("date", key.strip(" ()（）[]"))
        return "metadata"
    if is_relative_time(key):
        return "metadata"
    checks: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("buttons", is_button_row),
        ("prev_next", is_prev_next),
        ("related", is_inline_recommendation),
        ("disclaimer", is_disclaimer),
        ("copyright", is_copyright),
        ("contribution", is_contribution),
        ("return_link", is_return_link),
        ("reaction", is_reaction),
    )
    for name, check in checks:
        if check(key):
            return name
    return None


def _read_meta(meta: MetaLine, original: str, out: Cleaned) -> None:
    read_meta(meta, original, out.meta)


def read_meta(meta: MetaLine, original: str, into: dict[str, str]) -> None:
    """Store the first value of each field (source, author, editor, date) in ``into``, in the
    original script: ``meta`` was parsed from the Simplified form of ``original``."""
    simplified = to_simplified(original)
    for label, value in meta.pairs:
        field_name = META_LABELS.get(label)
        if not field_name or not value or field_name in into:
            continue
        at = simplified.find(value)  # folding is char by char, so offsets carry over
        into[field_name] = original[at : at + len(value)] if at >= 0 else value


# The site's address line of a footer ("地址：…　邮编：…　电话：…"): long, but not a paragraph.
_CONTACT_LABEL = re.compile(r"(?:地址|邮编|邮政编码|电话|传真|邮箱)\s*[:：]")


def _is_contact_line(line: Line) -> bool:
    return len(_CONTACT_LABEL.findall(line.key)) >= 2 and not line.key.endswith(_SENTENCE_END)


def _cut_footer(lines: list[Line], out: Cleaned) -> list[Line]:
    """The site footer: from the first copyright/ICP line after which no paragraph follows,
    everything goes (关于我们, 联系我们, the QR-code caption, the site's address line...)."""
    last_prose = max((i for i, x in enumerate(lines) if _is_prose(x) and not _is_contact_line(x)), default=-1)
    for i in range(max(last_prose + 1, 1), len(lines)):
        if is_copyright(lines[i].key):
            return _drop_indices(lines, set(range(i, len(lines))), "footer", out)
    return lines


def _cut_tails(lines: list[Line], out: Cleaned) -> list[Line]:
    """Drop a related-articles or comments block and all that follows it, when it is a tail:
    the text after its heading is smaller than the text before it."""
    sizes = [visible_len(x.key) for x in lines]
    total = sum(sizes)
    before = 0
    for i, line in enumerate(lines):
        after = total - before - sizes[i]
        if is_tail_heading(line.key) and before > 0 and after <= before:
            return _drop_indices(lines, set(range(i, len(lines))), "tail", out)
        before += sizes[i]
    return lines


def _drop_teasers(lines: list[Line], out: Cleaned) -> list[Line]:
    """Runs of 2+ teasers (see :func:`is_teaser`), with the short labels and dates between them:
    a list of other articles' summaries."""
    teasers = [i for i, x in enumerate(lines) if is_teaser(x.key)]
    drop: set[int] = set()
    for a, b in pairwise(teasers):
        between = range(a + 1, b)
        if all(not _is_prose(lines[k]) for k in between):
            drop.update((a, b, *between))
    return _drop_indices(lines, drop, "teaser", out)


_CLAUSE_MARK = re.compile("[，。；！？,;!?]")
#: A headline list's item: a title, then its date, perhaps after a counter ("评论", "阅读 12").
_DATED_ITEM = re.compile(
    rf"^(?P<title>.+?)[\s\u3000]*(?:(?:评论|阅读|点击|浏览)\s*[:：]?\s*\d*\s*)?[(（\[]?{_DATE_TEXT}[)）\]]?\s*$"
)


def _is_dated_headline(line: Line) -> bool:
    """A list item that is a short title followed by a date: an entry of a headline list."""
    found = _DATED_ITEM.match(line.key)
    if found is None:
        return False
    title = found.group("title").strip()
    # a headline has no clauses: "截止时间为2024-05-31" after a comma is a sentence's date
    return 0 < visible_len(title) <= 40 and _CLAUSE_MARK.search(title) is None


def _drop_link_lists(lines: list[Line], out: Cleaned) -> list[Line]:
    """Runs of 3+ short list items without sentence punctuation, dated or not: headline lists,
    menus."""
    drop: set[int] = set()
    i = 0
    while i < len(lines):
        j = i
        while (
            j < len(lines)
            and lines[j].kind == "item"
            and (_is_short_label(lines[j], 30) or _is_dated_headline(lines[j]))
        ):
            j += 1
        if j - i >= 3:
            drop.update(range(i, j))
        i = max(j, i + 1)
    return _drop_indices(lines, drop, "link_list", out)


#: Short labels before the first paragraph that make the top of the text a menu.
MIN_TOP_LABELS = 6


def _drop_top_nav(lines: list[Line], out: Cleaned) -> list[Line]:
    """Menus above the article: a run of 3+ very short lines at the very top, or, when the
    header zone (above the first paragraph) holds many short labels, all of its labels.

    Verse and other short lines that end in punctuation are not labels and stay.
    """
    first = next((i for i, x in enumerate(lines) if _is_prose(x)), None)
    if first is None:
        return lines
    j = 0
    while j < first and _is_short_label(lines[j], 10):
        j += 1
    drop = set(range(j)) if j >= 3 else set()
    labels = [i for i in range(first) if _is_short_label(lines[i], 12)]
    if len(labels) >= MIN_TOP_LABELS:
        drop.update(labels)
    return _drop_indices(lines, drop, "nav", out)


#: A tail of at least this many lines after the last paragraph, mostly short labels, is chrome.
MIN_LABEL_TAIL = 8


def _drop_trailing_labels(lines: list[Line], out: Cleaned) -> list[Line]:
    """After the last paragraph, a long run of mostly short labels ("诗人简介", "more>",
    "笔名：", counters, rankings) is a sidebar or profile box, not the article.

    An official notice ends with short lines too (attachments, issuing body, date): the run
    must be long (:data:`MIN_LABEL_TAIL`), 80% labels, and not end in a date.
    """
    last = max((i for i, x in enumerate(lines) if _is_prose(x)), default=-1)
    if last < 0:
        return lines
    tail = lines[last + 1 :]
    if len(tail) < MIN_LABEL_TAIL or is_date_line(tail[-1].key):
        return lines
    if sum(1 for x in tail if _is_short_label(x, 12)) < 0.8 * len(tail):
        return lines
    return _drop_indices(lines, set(range(last + 1, len(lines))), "label_tail", out)


#: Lines of a multi-line headline (引题/主题/副题) are at most this long.
MAX_HEADLINE_CHARS = 40
_TITLE_NOISE = re.compile(r"[\s\u3000\"'“”‘’《》「」]+")


def _norm_title(text: str) -> str:
    return _TITLE_NOISE.sub("", to_simplified(text)).lower()


# A document number (发文字号) is part of an official document, not of its headline.
_DOC_NUMBER = re.compile(r"[〔\[［(（【]\s*(?:19|20)\d{2}\s*[〕\]］)）】]\s*\d+\s*号")


def _drop_title_lines(lines: list[Line], titles: list[str], out: Cleaned) -> list[Line]:
    """The headline repeated at the top of the body: it is stored as the title, not as text.

    Chinese papers set a headline in up to four lines (引题, 主题, 副题, "某某出席"); a line
    above the first paragraph that is the title (equal to it, inside it, or it plus a short
    suffix like "强调") goes, and so do the short non-sentence lines right next to it. A
    notice's document number (国科发区〔2024〕12号), date or salutation ("各有关单位：") is
    not a headline line and stays.
    """
    forms = [f for f in (_norm_title(t) for t in titles if t) if len(f) >= 4]
    first = next((i for i, x in enumerate(lines) if _is_prose(x)), None)
    if not forms or first is None:
        return lines  # without a paragraph the short lines are all there is
    top = min(first, 6)

    def is_title(line: Line) -> bool:
        form = _norm_title(line.key)
        return len(form) >= 4 and any(
            form == f or form in f or (f in form and len(form) - len(f) <= 6) for f in forms
        )

    def is_headline_part(line: Line) -> bool:
        key = line.key
        return (
            visible_len(key) <= MAX_HEADLINE_CHARS
            and not key.endswith((*_CLAUSE_END, "：", ":"))
            and not _DOC_NUMBER.search(key)
            and not is_date_line(key)
        )

    def is_repeated_headline(line: Line) -> bool:  # a heading that is the title (plus a button)
        if line.kind != "head":
            return False
        form = _norm_title(line.key)
        return any(f in form and len(form) - len(f) <= 6 for f in forms)

    later = {i for i in range(top, len(lines)) if is_repeated_headline(lines[i])}
    hits = [i for i in range(top) if is_title(lines[i])]
    if not hits:
        return _drop_indices(lines, later, "title", out)
    start, end = hits[0], hits[-1]
    while start > 0 and is_headline_part(lines[start - 1]):
        start -= 1
    while end + 1 < top and is_headline_part(lines[end + 1]):
        end += 1
    drop = {i for i in range(start, end + 1) if i in hits or is_headline_part(lines[i])}
    return _drop_indices(lines, drop | later, "title", out)


def _drop_indices(lines: list[Line], drop: set[int], rule: str, out: Cleaned) -> list[Line]:
    if not drop:
        return lines
    out.dropped.extend((rule, lines[i].text) for i in sorted(drop))
    return [x for i, x in enumerate(lines) if i not in drop]
