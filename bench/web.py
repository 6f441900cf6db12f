"""The bench's web: the bundled sample web, weighted like real portal pages and pre-rendered.

Why not serve :mod:`crawler.samplesite` as it is: its pages are light (article pages 2.5-10 kB,
median ~6 kB), while the Chinese government portals the crawler is for weigh 20-60 kB (the 80
real pages of ``shared/extraction-corpus`` have a median of ~63 kB): inline CSS and scripts, a
mega-menu, hot-news and service side blocks, a friendly-links footer. Parsing and extraction cost
grows with the DOM, so a crawl of 6 kB pages would flatter every crawler's pages/s. So every HTML
page of the sample web gets deterministic, realistic chrome (``pad_bytes`` per page, ~21 kB on
average) that brings article pages to ~27 kB, without adding crawlable pages: its links are
in-host paths outside every source pattern, ``javascript:`` links and ``<option>`` values, so a
crawler judges them and skips them as it would on a real portal, and nothing leaves 127.0.0.1.

Every route is rendered once, to the exact bytes sent on the wire (status line, headers, body;
gzip variants for the gzip sites), so the server only looks up and writes.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from urllib.parse import parse_qsl, urlencode

from crawler.samplesite import ARTICLES, SampleWeb
from crawler.samplesite.server import Request, Response
from crawler.samplesite.site import PortalSite, Site

_PLACEHOLDER = re.compile(rb"@@SITE:([A-Za-z0-9_-]+)@@")
#: Chrome variants per site (pages pick one by a hash of their path: sizes vary, rendering stays fast).
VARIANTS = 8
#: Bytes of chrome added to a page, before encoding differences (GBK pages come out a bit lighter).
PAD_MIN, PAD_MAX = 17_000, 25_000


@dataclass(frozen=True, slots=True)
class Wire:
    """One pre-rendered response: the bytes of its head and body, plain and (maybe) gzipped."""

    status: int
    kind: str  # "article", "list", "home", "robots", "other"
    html: bool
    head: bytes
    body: bytes
    gz_head: bytes | None = None
    gz_body: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(slots=True)
class RenderedSite:
    """The wire bytes of every route of one site, and the site itself for lookups by query key."""

    name: str
    site: Site
    routes: dict[str, Wire]
    by_key: dict[str, str]  # route key (sorted query, no utm_*) -> target
    not_found: Wire
    encoding: str = "utf-8"

    def lookup(self, target: str) -> Wire:
        """As :meth:`Site.lookup`: exact, then query parameters in any order without ``utm_*``,
        then the bare path (static pages ignore queries)."""
        wire = self.routes.get(target)
        if wire is not None:
            return wire
        if "?" in target:
            alias = self.by_key.get(route_key(target))
            if alias is not None:
                return self.routes[alias]
            wire = self.routes.get(target.partition("?")[0])
            if wire is not None:
                return wire
        return self.not_found


@dataclass(slots=True)
class RenderedWeb:
    sites: dict[str, RenderedSite] = field(default_factory=dict)

    def articles(self) -> list[tuple[str, str, Wire]]:
        """(site, target, wire) of every article page."""
        return [
            (name, target, wire)
            for name, site in self.sites.items()
            for target, wire in site.routes.items()
            if wire.kind == "article"
        ]


def route_key(target: str) -> str:
    path, _, query = target.partition("?")
    kept = sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not k.startswith("utm_"))
    return path + (f"?{urlencode(kept)}" if kept else "")


# -- chrome ---------------------------------------------------------------------------------------

_MENUS = (
    ("政务公开", ("政府信息公开指南", "政府信息公开制度", "法定主动公开内容", "政府信息公开年报",
                  "依申请公开",
                  "机构职能", "领导信息", "内设机构", "直属单位", "规划计划", "财政预决算", "人事信息")),
    ("政务服务", ("网上办事大厅", "办事指南", "表格下载", "办件查询", "便民服务", "行政许可",
                  "行政确认", "公共服务事项", "中介服务", "证照办理")),
    ("科技资讯", ("科技要闻", "工作动态", "市州动态", "媒体聚焦", "图片新闻", "视频新闻",
                  "科技人物", "科普之窗", "国际合作", "创新创业")),
    ("政策法规", ("法律法规", "部门规章", "规范性文件", "政策解读", "图解政策", "政策问答",
                  "废止文件", "标准规范")),
    ("互动交流", ("厅长信箱", "在线访谈", "征求意见", "网上调查", "常见问题", "投诉举报",
                  "留言选登", "新闻发布会")),
    ("专题专栏", ("科技创新大会", "科技成果转化", "科技特派员", "创新型省份建设", "乡村振兴",
                  "优化营商环境", "安全生产", "党史学习教育")),
    ("数据发布", ("统计数据", "科技统计", "研发投入", "高新技术企业", "技术合同登记", "数据开放")),
    ("科技计划", ("项目申报", "项目管理", "项目公示", "验收结题", "专家库", "经费管理")),
)  # fmt: skip
_FRIENDS = (
    "中国政府网", "国务院国资委", "国家发展改革委", "教育部", "科学技术部", "工业和信息化部", "财政部",
    "人力资源社会保障部", "自然资源部", "生态环境部", "农业农村部", "商务部", "国家卫生健康委",
    "国家知识产权局", "中国科学院", "中国工程院", "国家自然科学基金委", "中国科协",
    "省人民政府", "省发展改革委", "省经济和信息化厅", "省教育厅", "省财政厅", "省人社厅",
    "省农业农村厅", "省商务厅", "省卫生健康委", "省市场监管局", "省统计局", "省知识产权服务促进中心",
)  # fmt: skip
_CSS_RULES = (
    "body{margin:0;padding:0;font:12px/1.5 'Microsoft YaHei',SimSun,arial;color:#333;background:#fff}",
    "a{color:#333;text-decoration:none}a:hover{color:#c00;text-decoration:underline}",
    ".wrap{width:1200px;margin:0 auto;overflow:hidden;zoom:1}",
    "ul,li{list-style:none;margin:0;padding:0}img{border:0;vertical-align:middle}",
    ".topbar{height:32px;line-height:32px;background:#f5f5f5;border-bottom:1px solid #e5e5e5}",
    ".mega-nav{height:48px;background:#0b5ea8;position:relative;z-index:99}",
    ".mega-nav li.item{float:left;width:150px;text-align:center;position:relative}",
    ".mega-nav li.item>a{display:block;color:#fff;font-size:16px;line-height:48px}",
    ".mega-nav .sub{display:none;position:absolute;left:0;top:48px;width:600px;background:#fff;"
    "border:1px solid #ccc;box-shadow:0 2px 6px rgba(0,0,0,.15);padding:10px}",
    ".mega-nav li.item:hover .sub{display:block}.mega-nav .sub a{float:left;width:25%;line-height:30px}",
    ".side-box{width:300px;float:right;margin-top:12px;border:1px solid #dcdcdc}",
    ".side-box h3{height:36px;line-height:36px;padding-left:12px;background:#f2f6fa;font-size:15px}",
    ".side-box li{height:30px;line-height:30px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}",
    ".hot-list li em{display:inline-block;width:18px;height:18px;background:#999;color:#fff;"
    "text-align:center;line-height:18px;margin-right:8px;font-style:normal}",
    ".hot-list li.top3 em{background:#c00}.zt-list li{height:auto;margin:8px 0}",
    ".service-grid a{float:left;width:33%;text-align:center;padding:10px 0}",
    ".foot-links{background:#eef2f6;padding:16px 0}.foot-links select{width:180px;margin-right:12px}",
    ".site-foot{background:#0b5ea8;color:#dce8f5;padding:18px 0;text-align:center;line-height:26px}",
    ".site-foot a{color:#dce8f5}.gov-badge{float:left;margin:0 30px}",
    "@media screen and (max-width:768px){.wrap{width:100%}.side-box{display:none}.mega-nav .sub{width:100%}}",
    ".share-bar a{display:inline-block;width:24px;height:24px;margin-left:6px;"
    "background:url(/images/share.png)}",
    ".font-size a{margin:0 4px;cursor:pointer}.print-btn{float:right;color:#666}",
    ".pagination a,.pagination span{display:inline-block;padding:2px 8px;border:1px solid #ddd;margin:0 2px}",
    ".search-box input.kw{width:200px;height:26px;border:1px solid #ccc;padding:0 6px}",
    ".search-box .btn{width:60px;height:28px;background:#0b5ea8;color:#fff;border:0;cursor:pointer}",
)
_SCRIPT = """
var _hmt = _hmt || [];
(function() {{
  var hm = document.createElement("script");
  hm.src = "/js/stat.js?v={v}";
  var s = document.getElementsByTagName("script")[0];
  s.parentNode.insertBefore(hm, s);
}})();
function setFontSize(size) {{
  var box = document.getElementById("zoom") || document.body;
  box.style.fontSize = size + "px";
  var ps = box.getElementsByTagName("p");
  for (var i = 0; i < ps.length; i++) {{
    ps[i].style.fontSize = size + "px"; ps[i].style.lineHeight = "2em";
  }}
}}
function switchTab(group, index) {{
  var tabs = document.querySelectorAll("[data-tab-group='" + group + "'] .tab");
  var panes = document.querySelectorAll("[data-tab-group='" + group + "'] .pane");
  for (var i = 0; i < tabs.length; i++) {{
    tabs[i].className = i === index ? "tab on" : "tab";
    panes[i].style.display = i === index ? "block" : "none";
  }}
}}
$(function() {{
  $(".mega-nav li.item").hover(function() {{ $(this).find(".sub").stop(true, true).slideDown(150); }},
    function() {{ $(this).find(".sub").stop(true, true).slideUp(100); }});
  $("#friendLinks select").change(function() {{ var u = $(this).val(); if (u) window.open(u); }});
  var today = new Date(), week = ["日", "一", "二", "三", "四", "五", "六"];
  $("#today").text(today.getFullYear() + "年" + (today.getMonth() + 1) + "月" + today.getDate()
    + "日 星期" + week[today.getDay()]);
  if (window.localStorage && localStorage.getItem("elderMode") === "1") {{ $("body").addClass("elder"); }}
}});
"""


def _titles() -> list[str]:
    return [a.title for a in ARTICLES]


def _chrome(site: str, variant: int, target_bytes: int, encoding: str) -> tuple[bytes, bytes, bytes]:
    """(head, top, bottom) chrome for ``site``, about ``target_bytes`` long in ``encoding``.

    Deterministic in (site, variant). Links are in-host ``.htm``/``.jsp`` paths that match no
    source pattern, or ``javascript:`` links; other sites appear only as ``<option>`` values.
    """
    rng = random.Random(f"{site}/{variant}")
    titles = _titles()
    rules = list(_CSS_RULES)
    rng.shuffle(rules)
    head = (
        '<meta name="keywords" content="科技,创新,政策,通知公告,工作动态" />\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />\n'
        f'<link rel="stylesheet" href="/css/common.css?v={variant}" />\n'
        '<script src="/js/jquery-1.12.4.min.js"></script>\n'
        f'<style type="text/css">\n{chr(10).join(rules)}\n</style>\n'
        f'<script type="text/javascript">{_SCRIPT.format(v=rng.randrange(10**6))}</script>\n'
    )
    menu = []
    for n, (name, subs) in enumerate(_MENUS):
        links = "".join(
            f'<a href="/portal/zwgk/c{1000 + n * 40 + i}/list.htm" target="_blank">{s}</a>'
            for i, s in enumerate(subs)
        )
        menu.append(f'<li class="item"><a href="/portal/c{1000 + n * 40}/list.htm">{name}</a>'
                    f'<div class="sub">{links}</div></li>')  # fmt: skip
    top = (
        '<div class="topbar"><div class="wrap"><span id="today"></span>'
        '<span class="fr"><a href="javascript:void(0)" onclick="elder()">长者模式</a> | '
        '<a href="javascript:void(0)">无障碍浏览</a> | <a href="/portal/en/home.htm">English</a> | '
        '<a href="javascript:void(0)">微博</a> | <a href="javascript:void(0)">微信</a> | '
        '<a href="/portal/app/download.htm">移动客户端</a></span></div></div>\n'
        '<div class="search-box wrap"><form action="/search/search.jsp" method="get">'
        '<input class="kw" name="q" placeholder="请输入关键字" />'
        '<input class="btn" type="submit" value="搜索" />'
        "</form></div>\n"
        f'<div class="mega-nav"><div class="wrap"><ul>{"".join(menu)}</ul></div></div>\n'
    )
    blocks: list[str] = []
    serial = 30000 + variant * 1000

    def hot_list(title: str, count: int) -> str:
        nonlocal serial
        items = []
        for i in range(count):
            serial += 1
            text = escape(rng.choice(titles))
            cls = ' class="top3"' if i < 3 else ""
            items.append(
                f'<li{cls}><em>{i + 1}</em><a href="/portal/zwgk/c1100/art{serial}.htm" title="{text}" '
                f'target="_blank">{text}</a></li>'
            )
        return f'<div class="side-box hot-list"><h3>{title}</h3><ul>{"".join(items)}</ul></div>\n'

    def specials() -> str:
        items = "".join(
            f'<li><a href="/portal/zt/zt{rng.randrange(100, 999)}/index.htm" target="_blank">'
            f'<img src="/images/zt/{rng.randrange(10**5)}.jpg" alt="{s}" width="280" height="60" /></a></li>'
            for s in _MENUS[5][1]
        )
        return f'<div class="side-box zt-list"><h3>专题专栏</h3><ul>{items}</ul></div>\n'

    def services() -> str:
        items = "".join(
            f'<a href="/portal/bsfw/item{rng.randrange(10**4)}.htm"><img src="/images/ico/{i}.png" alt="" />'
            f"<span>{s}</span></a>"
            for i, s in enumerate(_MENUS[1][1])
        )
        return f'<div class="side-box service-grid"><h3>政务服务</h3><div>{items}</div></div>\n'

    options = [
        f'<option value="http://www.example-{i}.gov.cn.invalid/">{f}</option>' for i, f in enumerate(_FRIENDS)
    ]
    half = len(options) // 2
    footer = (
        '<div class="foot-links" id="friendLinks"><div class="wrap">友情链接：'
        f'<select><option value="">——国家部委网站——</option>{"".join(options[:half])}</select>'
        f'<select><option value="">——省级部门网站——</option>{"".join(options[half:])}</select>'
        "</div></div>\n"
        '<div class="site-foot"><div class="wrap">'
        '<a class="gov-badge" href="javascript:void(0)"><img src="/images/dzjg.png" alt="党政机关" /></a>'
        '<ul class="foot-nav"><li><a href="/portal/about/wzdt.htm">网站地图</a></li>'
        '<li><a href="/portal/about/lxwm.htm">联系我们</a></li>'
        '<li><a href="/portal/about/smsm.htm">使用说明</a></li>'
        '<li><a href="/portal/about/yszc.htm">隐私政策</a></li></ul>'
        "<p>版权所有：本网站　建议使用1366×768分辨率　IE9以上版本浏览器</p>"
        f"<p>网站标识码：{rng.randrange(10**9, 10**10)}　"
        f'<a href="javascript:void(0)">ICP备{rng.randrange(10**7)}号</a></p>'
        "</div></div>\n"
        f'<script type="text/javascript">document.write(unescape("%3Cspan id=\'_ideConac\' %3E%3C/span%3E'
        f"%3Cscript src='/js/conac.js?v={variant}' type='text/javascript'%3E%3C/script%3E\"));</script>\n"
    )
    fixed = len((head + top + footer).encode(encoding, errors="xmlcharrefreplace"))
    # Fill to the target with side blocks, as CMS templates do (hot lists, specials, services).
    makers = [lambda: hot_list("热点排行", 10), specials, services, lambda: hot_list("最新发布", 12)]
    size = fixed
    index = 0
    while size < target_bytes:
        block = makers[index % len(makers)]()
        blocks.append(block)
        size += len(block.encode(encoding, errors="xmlcharrefreplace"))
        index += 1
    bottom = f'<div class="wrap side">{"".join(blocks)}</div>\n{footer}'
    enc = encoding
    return (
        head.encode(enc, errors="xmlcharrefreplace"),
        top.encode(enc, errors="xmlcharrefreplace"),
        bottom.encode(enc, errors="xmlcharrefreplace"),
    )


def pad_html(body: bytes, chrome: tuple[bytes, bytes, bytes]) -> bytes:
    """Insert chrome into a page: head extras before ``</head>``, the top after ``<body...>``,
    side blocks and footer before ``</body>``. Pages without those tags stay as they are."""
    head, top, bottom = chrome
    lower = body.lower()
    h = lower.find(b"</head>")
    b_open = lower.find(b"<body")
    b_end = lower.find(b">", b_open) + 1 if b_open >= 0 else -1
    b_close = lower.rfind(b"</body>")
    if min(h, b_open, b_close) < 0 or not h < b_open < b_end <= b_close:
        return body
    return body[:h] + head + body[h:b_end] + top + body[b_end:b_close] + bottom + body[b_close:]


# -- rendering ------------------------------------------------------------------------------------


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


def _head(status: int, headers: Mapping[str, str], length: int) -> bytes:
    lines = [_status_line(status)]
    lines += [f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items()]
    lines.append(f"Content-Length: {length}\r\n\r\n".encode())
    return b"".join(lines)


def _kind(site: Site, target: str) -> str:
    if target == "/robots.txt":
        return "robots"
    if isinstance(site, PortalSite) and target in site.kinds:
        kind = site.kinds[target][0]
        return kind if kind in ("home", "list", "article") else "other"
    return "other"


def render_web(web: SampleWeb, netlocs: Mapping[str, str], *, pad: bool = True) -> RenderedWeb:
    """Render every route of ``web`` for sites served at ``netlocs`` (``{site: "127.0.0.1:PORT"}``)."""
    bases = {name.encode(): f"http://{netloc}".encode() for name, netloc in netlocs.items()}

    def resolve(data: bytes) -> bytes:
        if b"@@SITE:" not in data:
            return data
        return _PLACEHOLDER.sub(lambda m: bases.get(m.group(1), m.group(0)), data)

    rendered = RenderedWeb()
    for name, site in web.sites.items():
        encoding = getattr(site, "encoding", "utf-8")
        chromes = [
            _chrome(name, v, PAD_MIN + (PAD_MAX - PAD_MIN) * v // (VARIANTS - 1), encoding)
            for v in range(VARIANTS)
        ]

        def wire(target: str, response: Response, kind: str, *, site: Site = site, chromes=chromes) -> Wire:
            body = response.body if isinstance(response.body, bytes) else b"".join(response.body())
            body = resolve(body)
            headers = {k: resolve(v.encode()).decode() for k, v in response.headers.items()}
            ctype = headers.get("Content-Type", "")
            is_html = ctype.startswith("text/html")
            if pad and is_html:
                variant = int(hashlib.md5(target.encode()).hexdigest()[:8], 16) % VARIANTS
                body = pad_html(body, chromes[variant])
            headers = {"Server": site.server, **headers}
            if response.status == 200:
                headers["ETag"] = '"' + hashlib.md5(body).hexdigest()[:16] + '"'
            gz_head = gz_body = None
            if site.gzip and len(body) > 512 and (ctype.startswith("text/") or "xml" in ctype):
                gz_body = gzip.compress(body, compresslevel=5, mtime=0)
                gz_headers = {**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
                gz_head = _head(response.status, gz_headers, len(gz_body))
            return Wire(
                response.status,
                kind,
                is_html,
                _head(response.status, headers, len(body)),
                body,
                gz_head,
                gz_body,
            )

        routes: dict[str, Wire] = {}
        by_key: dict[str, str] = {}
        for target in site.routes:
            response = web.respond(Request("GET", name, target))
            routes[target] = wire(target, response, _kind(site, target))
            if "?" in target:
                by_key[route_key(target)] = target
        missing = wire("/404", site.not_found(), "other")
        rendered.sites[name] = RenderedSite(name, site, routes, by_key, missing, encoding)
    return rendered
