"""The sample web: eight Chinese policy portals built from the sample articles, with ground truth.

Why: the crawler's first command crawls this offline, and integration tests and benchmarks crawl
it, so it has to look like the real thing (several hosts, each with its own CMS, encoding, URL
scheme and chrome; reposts; robots.txt; attachments; dead links) while every article page has a
known expected text.

=========  ==========================  ====================================================
site       modelled on                 traps
=========  ==========================  ====================================================
most       ministry portal (TRS)       UTF-8 + gzip; ``./`` and ``../`` links; sitemap.xml
                                       lists an orphan page; canonical links
sckjt      provincial department       GBK bytes, ``<meta http-equiv>`` gb2312, no header charset
xjkjt      region department (jcms)    UTF-8 bytes but the meta says gb2312, no header charset;
                                       query-string pagination and attachment downloads
ctex       technology exchange (004)   ``<base href>``; 来源/时间 line, 】【打印, 免责声明,
                                       相关文章, 网友评论, ICP footers; ``#comments`` links
hitech     high-tech-zone site (002)   nav list of 13 columns above the title; 来源/日期/点击
repost     repost portal (000-003)     Traditional with pinyin readings in text and titles;
                                       投稿郵箱 line in the body; links back to the originals
haixi      county bureau (old ASP)     GBK with no charset anywhere; ``?ArticleID=`` URLs;
                                       ``<br>`` paragraphs; robots Crawl-delay
zjkjt      information disclosure      ``标题 - 浙江省科学技术厅``; 索引号/发布机构/文号/成文日期
           (政府信息公开, Hanweb)       table (no colons), the same as a spaced-label list with
                                       成文日期 only, a 发布机构 line; document numbers in
                                       〔〕, [] or （） brackets, or only under the headline
=========  ==========================  ====================================================

Every site has a robots.txt disallowing ``/admin/`` (or ``/Admin/``) and ``/private/``, and links a
private article from a list page (the crawler must never fetch it); list pages link a deleted
article (404); the home page links a dead topic page (404). Home pages link the other sites.

Ground truth (:class:`SampleWeb`): ``articles`` maps every article page ``(site, path)`` to an
:class:`ArticlePage` (article id, variant, expected clean text, title, date, agency, document
number, author);
pages with the same article id are duplicates (exact for ``original``/``repost``/``orphan``, near
for ``added-paragraph``/``cut-paragraph``). ``disallowed``, ``broken``, ``attachments`` and
:meth:`SampleWeb.reachable_articles` complete it. :class:`~crawler.samplesite.server.RunningSite`
gives the same as absolute URLs. Each portal has the role its source declares
(:attr:`PortalSite.role`, :meth:`SampleWeb.role_of`): most, sckjt and zjkjt issue, the repost
portal and ctex republish, the others do both; with it every story's original outranks each of
its reposts (:func:`crawler.dedup.rank_key`), so a crawl must store the original as the document.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import string
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from functools import cache, partial
from html import escape
from importlib import resources
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode

from crawler.samplesite.content import (
    GENERATED_PREFIX,
    Article,
    article_date,
    get_article,
    to_traditional,
    with_added_paragraph,
    with_cut_paragraph,
)
from crawler.samplesite.files import CONTENT_TYPES, SampleFile, file_bytes
from crawler.samplesite.server import Request, Response, Route, pdf, site_url

PageKey = tuple[str, str]  # (site name, path with query)

# Variants of an article page, relative to the article's original page.
ORIGINAL = "original"
REPOST = "repost"  # the same text under another site's chrome (exact duplicate)
ADDED = "added-paragraph"  # a repost that appends a paragraph (near duplicate)
CUT = "cut-paragraph"  # a repost that drops a paragraph (near duplicate)
ORPHAN = "orphan"  # the same text at an old URL no page links to (only sitemap.xml lists it)

HOME_ITEMS = 4  # articles per column block on a home page
LARGE_PAGE_SIZE = 20  # list page size when scale > 1
GENERATED_PER_SCALE = 20  # generated articles per scale step; every 10th is also reposted


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """Ground truth for one article page."""

    site: str
    path: str
    article_id: str
    column: str
    variant: str = ORIGINAL
    original: PageKey | None = None  # the original's page, for every other variant
    traditional: bool = False  # shown in Traditional with pinyin readings
    serial: int = 0  # the CMS's article number (used in URLs and chrome)
    shows_number: bool = False  # the site prints the document number (发文字号) of its documents

    @property
    def key(self) -> PageKey:
        return self.site, self.path

    @property
    def article(self) -> Article:
        """The article as this page carries it (variants applied), Simplified."""
        article = get_article(self.article_id)
        if self.variant == ADDED:
            return with_added_paragraph(article)
        if self.variant == CUT:
            return with_cut_paragraph(article)
        return article

    @property
    def text(self) -> str:
        """Expected clean text after normalization: Simplified, no readings, one line per paragraph."""
        return self.article.text

    @property
    def expected_text(self) -> str:
        """The text an extractor should return: the page's script, no readings."""
        return self.display(self.text, readings=False)

    @property
    def display_text(self) -> str:
        """The text as the page shows it (Traditional with readings on the repost portal)."""
        return self.display(self.text)

    def display(self, text: str, *, readings: bool = True) -> str:
        return to_traditional(text, key=self.article_id, readings=readings) if self.traditional else text

    @property
    def title(self) -> str:
        return get_article(self.article_id).title

    @property
    def display_title(self) -> str:
        """The title as the page shows it (on the repost portal with readings, like its text)."""
        return self.display(self.title)

    @property
    def expected_title(self) -> str:
        """The title an extractor should return: the page's script, no readings, no site name."""
        return self.display(self.title, readings=False)

    @property
    def date(self) -> str:
        return get_article(self.article_id).date

    @property
    def agency(self) -> str | None:
        return get_article(self.article_id).agency

    @property
    def expected_agency(self) -> str | None:
        """The issuing agency as the page names it (its script, no readings), or None."""
        agency = self.agency
        return self.display(agency, readings=False) if agency else None

    @property
    def document_number(self) -> str | None:
        """The document number (发文字号, standard form) when the page shows one: in its
        disclosure table or 发布机构 line, or on a line of its text."""
        number = get_article(self.article_id).document_number
        if number and (self.shows_number or number in self.text.split("\n")):
            return number
        return None

    @property
    def written(self) -> str:
        """The date the document was signed (成文日期), ISO."""
        article = get_article(self.article_id)
        return article.written or article.date

    @property
    def author(self) -> str | None:
        return get_article(self.article_id).author


@dataclass(frozen=True, slots=True)
class Link:
    """A link of a page plan: its target, anchor text, and what the href adds (tracking, fragment).

    Links to articles carry the page and read its title and date only when rendered, so that
    reachability over 20,000 pages does not build 20,000 articles.
    """

    site: str
    path: str
    label: str = ""
    suffix: str = ""  # "?utm_source=..." or "#comments": the same page once canonicalized
    day: str = ""  # shown next to list items
    page: ArticlePage | None = None

    @property
    def key(self) -> PageKey:
        return self.site, self.path

    @property
    def text(self) -> str:
        return self.page.display_title if self.page and not self.label else self.label

    @property
    def date(self) -> str:
        return self.page.date if self.page and not self.day else self.day


Plan = dict[str, list[Link]]


@dataclass(slots=True)
class Column:
    """A channel of a portal (栏目): a list of article pages, newest first, paginated."""

    key: str
    name: str
    ident: int = 0  # the number some CMSs put in URLs
    trail: tuple[str, ...] = ()  # unlinked breadcrumb labels between home and the column
    pages: list[ArticlePage] = field(default_factory=list)
    chunks: list[list[ArticlePage]] = field(default_factory=list)


def relative_href(from_target: str, to_target: str, *, dot: bool = False) -> str:
    """The relative URL from one page to another path (``../x/``, ``./a.html``, ``b.asp?id=1``)."""
    from_dir = from_target.split("?", 1)[0].rsplit("/", 1)[0] or "/"
    to_path, _, query = to_target.partition("?")
    rel = posixpath.relpath(to_path, from_dir)
    if rel == ".":
        rel = "./"
    elif to_path.endswith("/"):
        rel += "/"
    elif dot and not rel.startswith("../"):
        rel = "./" + rel
    return rel + (f"?{query}" if query else "")


def _route_key(target: str) -> str:
    """A target as the server matches it: query parameters in any order, ``utm_*`` ignored."""
    path, _, query = target.partition("?")
    kept = sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not k.startswith("utm_"))
    return path + (f"?{urlencode(kept)}" if kept else "")


def _hex(*parts: object, length: int = 12) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()[:length]


@cache
def _templates(name: str) -> dict[str, string.Template]:
    """The sections of ``data/templates/<name>.html`` (``<!-- @section -->`` markers)."""
    text = resources.files(__package__).joinpath("data").joinpath("templates").joinpath(f"{name}.html")
    parts = re.split(r"^<!-- @(\w+) -->\n", text.read_text(encoding="utf-8"), flags=re.M)
    return {parts[i]: string.Template(parts[i + 1].rstrip("\n")) for i in range(1, len(parts), 2)}


# -- sites ----------------------------------------------------------------------------------------


class Site:
    """One host: explicit routes, a robots.txt, and how the server behaves for it.

    Tests create bare sites with :meth:`SampleWeb.add_site` and fill them with hostile routes.
    """

    def __init__(
        self,
        name: str,
        *,
        disallow: Iterable[str] = ("/admin/",),
        crawl_delay: float | None = None,
        server: str = "nginx",
        gzip: bool = False,
        robots_extra: str = "",
    ) -> None:
        self.name = name
        self.disallow = tuple(disallow)
        self.crawl_delay = crawl_delay
        self.server = server
        self.gzip = gzip
        self.routes: dict[str, Route] = {}  # add with add_route, which also indexes query routes
        self._by_key: dict[str, str] = {}
        lines = ["User-agent: *", *(f"Disallow: {p}" for p in self.disallow)]
        if crawl_delay is not None:
            lines.append(f"Crawl-delay: {crawl_delay:g}")
        self.robots = "\n".join(lines) + "\n" + robots_extra
        self.add_route("/robots.txt", Response(200, {"Content-Type": "text/plain"}, self.robots.encode()))

    def add_route(self, target: str, route: Route) -> None:
        self.routes[target] = route
        if "?" in target:
            self._by_key[_route_key(target)] = target

    def is_disallowed(self, target: str) -> bool:
        return any(target.startswith(prefix) for prefix in self.disallow)

    def lookup(self, target: str) -> tuple[str, Route] | None:
        """The route for a request target: exact; then with its parameters in any order and
        ``utm_*`` ignored (crawlers sort queries); then the bare path (static pages ignore queries,
        as real servers do)."""
        candidates = (target, self._by_key.get(_route_key(target), ""), target.partition("?")[0])
        for candidate in candidates:
            route = self.routes.get(candidate)
            if route is not None:
                return candidate, route
        return None

    def not_found(self) -> Response:
        return Response(
            404, {"Content-Type": "text/html"}, b"<html><body><h1>404 Not Found</h1></body></html>"
        )

    def outlinks(self, target: str) -> list[PageKey]:
        """Pages this page links to (for reachability); bare sites know nothing of their bodies."""
        return []


class PortalSite(Site):
    """A generated portal: columns of articles rendered through the site's template file.

    Subclasses set the look (template, paragraph markup), the bytes (encoding, charset in header),
    the URL scheme (list, article, attachment paths) and the link style.
    """

    slug: ClassVar[str]
    title: ClassVar[str]
    columns_spec: ClassVar[tuple[tuple[str, str], ...]]
    encoding: ClassVar[str] = "utf-8"
    header_charset: ClassVar[bool] = True
    server_name: ClassVar[str] = "nginx"
    compress: ClassVar[bool] = False
    extra_headers: ClassVar[Mapping[str, str]] = {}
    link_style: ClassVar[str] = "absolute"  # "absolute" path, "relative", or "base" (see base_dir)
    title_sep: ClassVar[str] = "_"  # between the page's name and the site's in <title>
    shows_numbers: ClassVar[bool] = False  # article templates print the document number
    base_dir: ClassVar[str] = ""  # the <base href> path when link_style == "base"
    dot: ClassVar[bool] = False  # relative links start with "./"
    crumb_sep: ClassVar[str] = " &gt; "
    admin_path: ClassVar[str] = "/admin/login.html"
    disallowed_dirs: ClassVar[tuple[str, ...]] = ("/admin/", "/private/")
    crawl_delay_s: ClassVar[float | None] = None  # set: robots.txt has build_site's crawl_delay
    robots_more: ClassVar[str] = ""
    page_size: ClassVar[int] = 3  # at scale 1; LARGE_PAGE_SIZE above
    serial_base: ClassVar[int] = 1000
    takes_generated: ClassVar[bool] = True
    traditional: ClassVar[bool] = False
    #: What the sample web's source declares of this portal (``host_roles`` in
    #: seeds/sample-site.toml): "issuer" for a portal that publishes only its own stories,
    #: "repost" for one whose business is republishing others' (the repost portal, the
    #: exchange), None for one that publishes its own and also republishes some.
    role: ClassVar[str | None] = None
    para_html: ClassVar[str] = "<p>{}</p>"
    sig_html: ClassVar[str] = '<p style="text-align: right;">{}</p>'
    home_label: ClassVar[str] = "首页"
    footer_labels: ClassVar[tuple[str, str]] = ("网站首页", "管理登录")
    text_body: ClassVar[str] = "正文"
    dead_special: ClassVar[str] = "/zt/2019/index.html"

    def __init__(self, friends: Mapping[str, str], *, crawl_delay: float | None = None) -> None:
        super().__init__(
            self.slug,
            disallow=self.disallowed_dirs,
            crawl_delay=crawl_delay if self.crawl_delay_s is not None else None,
            server=self.server_name,
            gzip=self.compress,
            robots_extra=self.robots_more,
        )
        self.friends = {k: v for k, v in friends.items() if k != self.name}
        self.columns = [Column(key, name, 1233 + i) for i, (key, name) in enumerate(self.columns_spec)]
        self.by_key = {c.key: c for c in self.columns}
        self.kinds: dict[str, tuple[str, Column | None, int, ArticlePage | None]] = {}
        self.position: dict[str, int] = {}
        self.private_path = ""
        self.dead_path = ""
        self.attachment_of: dict[str, str] = {}
        #: Article path -> its files (path, file), in 附件 order (articles with ``files``).
        self.files_of: dict[str, list[tuple[str, SampleFile]]] = {}

    # -- URL scheme (overridden per CMS)

    def list_path(self, column: Column, page: int) -> str:
        return f"/{column.key}/index.html" if page == 0 else f"/{column.key}/index_{page}.html"

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return (f"/{column.key}/",)

    def article_path(self, column: Column, day: date, serial: int) -> str:
        raise NotImplementedError

    def attachment_path(self, page: ArticlePage) -> str:
        day = date.fromisoformat(page.date)
        return f"{page.path.rsplit('/', 1)[0]}/P0{day:%Y%m%d}{page.serial:012d}.pdf"

    def file_path(self, page: ArticlePage, index: int, file: SampleFile) -> str:
        """Where the article's ``index``-th file (1-based) lives: next to its PDF attachment."""
        return f"{self.attachment_path(page).removesuffix('.pdf')}_{index}.{file.type}"

    def home_aliases(self) -> tuple[str, ...]:
        return ("/index.html",)

    # -- building

    def main_columns(self) -> list[Column]:
        return [c for c in self.columns if c.pages]

    def add_page(self, page: ArticlePage, *, listed: bool = True) -> None:
        """Register an article page; listed pages appear in their column's lists."""
        if listed:
            self.by_key[page.column].pages.append(page)
        self._register(page.path, ("article", None, 0, page))
        generated = page.article_id.startswith(GENERATED_PREFIX)  # never has one; building it is not free
        if not generated and get_article(page.article_id).attachment:
            path = self.attachment_path(page)
            self.attachment_of[page.path] = path
            self.add_route(path, pdf(f"Attachment {page.serial}"))
        if not generated and get_article(page.article_id).files:
            placed = []
            for index, file in enumerate(get_article(page.article_id).files, 1):
                path = self.file_path(page, index, file)
                headers = {"Content-Type": CONTENT_TYPES[file.type]}
                self.add_route(path, Response(200, headers, file_bytes(file)))
                placed.append((path, file))
            self.files_of[page.path] = placed

    def finalize(self, page_size: int) -> None:
        """Sort and paginate the columns, register home, list, private, admin and sitemap routes."""
        for column in self.columns:
            column.pages.sort(key=lambda p: p.serial, reverse=True)  # serials follow dates: newest first
            column.chunks = [
                column.pages[i : i + page_size] for i in range(0, len(column.pages), page_size)
            ] or [[]]
            for index, page in enumerate(column.pages):
                self.position[page.path] = index
            for number in range(len(column.chunks)):
                self._register(self.list_path(column, number), ("list", column, number, None))
            for alias in self.list_aliases(column):
                self._register(alias, ("list", column, 0, None))
        for path in ("/", *self.home_aliases()):
            self._register(path, ("home", None, 0, None))
        first = self.main_columns()[0]
        day = date(2024, 3, 1)
        self.private_path = "/private" + self.article_path(first, day, self.serial_base - 1)
        self.dead_path = self.article_path(first, date(2019, 6, 3), self.serial_base - 2)
        private = "<h1>内部工作简报（第12期）</h1><p>本页面仅限内部工作人员查阅，请勿外传。</p>"
        self.add_route(self.private_path, self._simple_page("内部工作简报（第12期）", private))
        login = '<form method="post"><input name="user"><input name="pass" type="password"></form>'
        self.add_route(self.admin_path, self._simple_page("后台管理登录", login))

    def _register(self, path: str, kind: tuple[str, Column | None, int, ArticlePage | None]) -> None:
        self.kinds[path] = kind
        self.add_route(path, partial(self._serve, path))

    # -- plans: the links of each page, shared by rendering and reachability

    def common_plan(self) -> Plan:
        return {
            "nav": [Link(self.name, self.list_path(c, 0), c.name) for c in self.columns],
            "footer": [
                Link(self.name, "/", self.footer_labels[0]),
                Link(self.name, self.admin_path, self.footer_labels[1]),
            ],
        }

    def home_plan(self) -> Plan:
        plan = self.common_plan()
        plan["friends"] = [Link(name, "/", title) for name, title in self.friends.items()]
        plan["specials"] = [Link(self.name, self.dead_special, "专题专栏")]
        for column in self.main_columns():
            items = [self._item(p) for p in column.pages[:HOME_ITEMS]]
            if items:  # the first headline carries a tracking parameter, as home pages often do
                items[0] = replace(items[0], suffix="?utm_source=home")
            plan[f"block:{column.key}"] = items
            plan[f"more:{column.key}"] = [Link(self.name, self.list_path(column, 0), "更多")]
        return plan

    def list_plan(self, column: Column, number: int) -> Plan:
        plan = self.common_plan()
        plan["crumbs"] = self._crumbs(column)
        items = [self._item(p) for p in column.chunks[number]]
        if number == 0 and column is self.main_columns()[0]:
            items.insert(
                min(1, len(items)),
                Link(self.name, self.private_path, "内部工作简报（第12期）", day="2024-03-01"),
            )
            items.insert(
                min(3, len(items)),
                Link(self.name, self.dead_path, "关于开展2019年度科技统计工作的通知", day="2019-06-03"),
            )
        plan["items"] = items
        plan["pager"] = self._pager(column, number)
        return plan

    def article_plan(self, page: ArticlePage) -> Plan:
        plan = self.common_plan()
        column = self.by_key[page.column]
        plan["crumbs"] = self._crumbs(column)
        plan["related"], plan["prev"], plan["next"] = [], [], []
        if page.path in self.position:
            index = self.position[page.path]
            pages = column.pages
            nearby = {
                p.path: p for p in (pages[(index + k) % len(pages)] for k in (1, 2, 3)) if p is not page
            }
            plan["related"] = [self._item(p) for p in nearby.values()]
            if index > 0:
                plan["prev"] = [self._item(pages[index - 1])]
            if index + 1 < len(pages):
                plan["next"] = [self._item(pages[index + 1])]
        if page.path in self.attachment_of:
            plan["attachment"] = [
                Link(self.name, self.attachment_of[page.path], get_article(page.article_id).attachment or "")
            ]
        if page.path in self.files_of:
            plan["files"] = [Link(self.name, path, file.title) for path, file in self.files_of[page.path]]
        if page.original and self.traditional:
            plan["origin"] = [Link(*page.original, "原文鏈接")]
        return plan

    def plan(self, target: str) -> Plan:
        kind, column, number, page = self.kinds[target]
        if kind == "home":
            return self.home_plan()
        if kind == "list":
            assert column is not None
            return self.list_plan(column, number)
        assert page is not None
        return self.article_plan(page)

    def outlinks(self, target: str) -> list[PageKey]:
        found = self.lookup(target)
        if found is None or found[0] not in self.kinds:
            return []
        plan = self.plan(found[0])
        return [link.key for links in plan.values() for link in links]

    def _item(self, page: ArticlePage) -> Link:
        return Link(page.site, page.path, page=page)

    def _crumbs(self, column: Column) -> list[Link]:
        return [
            Link(self.name, "/", self.home_label),
            Link(self.name, self.list_path(column, 0), column.name),
        ]

    def _pager(self, column: Column, number: int) -> list[Link]:
        """首页, 上一页, ten page numbers around this one, 下一页, 尾页: deep pages stay a few clicks away."""
        last = len(column.chunks) - 1
        if last == 0:
            return []
        link = partial(Link, self.name)
        pager = [link(self.list_path(column, 0), "首页")]
        if number > 0:
            pager.append(link(self.list_path(column, number - 1), "上一页"))
        for n in range(max(0, number - 4), min(last, number + 5) + 1):
            if n != number:
                pager.append(link(self.list_path(column, n), str(n + 1)))
        if number < last:
            pager.append(link(self.list_path(column, number + 1), "下一页"))
        pager.append(link(self.list_path(column, last), "尾页"))
        return pager

    # -- rendering

    def href(self, from_target: str, link: Link) -> str:
        if link.site != self.name:
            href = site_url(link.site, link.path)
        elif self.link_style == "relative":
            href = relative_href(from_target, link.path, dot=self.dot)
        elif self.link_style == "base":
            href = relative_href(self.base_dir, link.path)
        else:
            href = link.path
        suffix = link.suffix
        if suffix.startswith("?") and "?" in href:
            suffix = "&" + suffix[1:]
        return escape(href + suffix)

    def fill(self, section: str, **values: object) -> str:
        return _templates(self.name)[section].substitute(values)

    def _anchors(self, target: str, links: list[Link], sep: str = " ") -> str:
        return sep.join(f'<a href="{self.href(target, k)}">{escape(k.text)}</a>' for k in links)

    def _nav(self, target: str, plan: Plan) -> str:
        return "\n".join(
            self.fill("nav_item", href=self.href(target, k), text=escape(k.text)) for k in plan["nav"]
        )

    def _items(self, target: str, links: list[Link]) -> str:
        rows = []
        for link in links:
            href = self.href(target, link)
            rows.append(
                self.fill(
                    "item", href=href, title=escape(link.text), date=link.date, comments=f"{href}#comments"
                )
            )
        return "\n".join(rows)

    def _layout(self, target: str, plan: Plan, title: str, body: str, head: str = "") -> str:
        nav = self._nav(target, plan)
        return self.fill(
            "layout",
            title=escape(title),
            head=head,
            body=body,
            nav=nav,
            footer=self._anchors(target, plan["footer"], " | "),
            home=self.href(target, Link(self.name, "/")),
            base=site_url(self.name, self.base_dir),
        )

    def render_home(self, target: str) -> str:
        plan = self.home_plan()
        blocks = "\n".join(
            self.fill(
                "block",
                name=escape(c.name),
                more=self.href(target, plan[f"more:{c.key}"][0]),
                items=self._items(target, plan[f"block:{c.key}"]),
            )
            for c in self.main_columns()
        )
        body = self.fill(
            "home",
            blocks=blocks,
            specials=self._anchors(target, plan["specials"]),
            friends=self._anchors(target, plan["friends"], " "),
        )
        return self._layout(target, plan, self.title, body)

    def render_list(self, target: str, column: Column, number: int) -> str:
        plan = self.list_plan(column, number)
        pager = self._anchors(target, plan["pager"])
        if pager:
            pager = f"共{len(column.chunks)}页　当前第{number + 1}页　{pager}"
        body = self.fill(
            "list",
            name=escape(column.name),
            crumbs=self._crumb_html(target, plan["crumbs"], column),
            items=self._items(target, plan["items"]),
            pager=pager,
            nav=self._nav(target, plan),
            column_id=column.ident,
        )
        return self._layout(target, plan, f"{column.name}{self.title_sep}{self.title}", body)

    def _crumb_html(self, target: str, crumbs: list[Link], column: Column, tail: str = "") -> str:
        home, col = (f'<a href="{self.href(target, k)}">{escape(k.text)}</a>' for k in crumbs)
        parts = [home, *column.trail, col] + ([tail] if tail else [])
        return self.crumb_sep.join(parts)

    def paragraphs_html(
        self, page: ArticlePage, attachment_href: str | None, file_hrefs: Mapping[str, str] | None = None
    ) -> str:
        """The body's paragraphs; a "附件：title" paragraph links its PDF, a "附件N：title" (or
        "附件：title") paragraph the file of that title (``file_hrefs``: title -> href)."""
        simplified = page.article.paragraphs
        shown = [page.display(p) for p in simplified]
        signature = 2 if len(shown) > 2 and re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", simplified[-1]) else 0
        attachment = get_article(page.article_id).attachment
        out = []
        for index, (plain, text) in enumerate(zip(simplified, shown, strict=True)):
            markup = escape(text, quote=False)
            if attachment_href and attachment and plain == f"附件：{attachment}":
                markup = f'附件：<a href="{attachment_href}">{escape(attachment)}</a>'
            label = re.match(r"附件\d*：", plain)
            if file_hrefs and label and plain[label.end() :] in file_hrefs:
                title = plain[label.end() :]
                markup = f'{label.group(0)}<a href="{file_hrefs[title]}">{escape(title)}</a>'
            is_signature = index >= len(shown) - signature
            out.append((self.sig_html if is_signature else self.para_html).format(markup))
        return "\n".join(out)

    def article_context(self, target: str, page: ArticlePage, plan: Plan) -> dict[str, object]:
        """Everything an article template may show (each template uses what its CMS shows)."""
        column = self.by_key[page.column]
        day = date.fromisoformat(page.date)
        agency = page.display(page.agency, readings=False) if page.agency else ""
        author = page.display(page.author, readings=False) if page.author else ""
        title = escape(page.display_title)
        attachment = plan.get("attachment")
        related = self._items(target, plan["related"])
        prevnext = "　".join(
            f'{label}<a href="{self.href(target, k)}">{escape(k.text)}</a>'
            for label, links in (("上一篇：", plan["prev"]), ("下一篇：", plan["next"]))
            for k in links
        )
        origin = plan.get("origin")
        return {
            "title": title,
            "date": page.date,
            "date_cn": f"{day:%Y年%m月%d日}",
            "date_short": f"{day.year}-{day.month}-{day.day}",
            "datetime": f"{page.date} {8 + page.serial % 10:02d}:{page.serial * 7 % 60:02d}",
            "agency": escape(agency),
            "agency_or_unknown": escape(agency or "未知"),
            "number": escape(self._number_shown(page)),
            "written": page.written,
            "written_cn": f"{date.fromisoformat(page.written):%Y年%m月%d日}",
            "index_no": f"002482870/{day.year}-{page.serial:05d}",
            "author": escape(author),
            "author_or_anon": escape(author or "佚名"),
            "column": escape(column.name),
            "column_id": column.ident,
            "serial": page.serial,
            "hits": 100 + page.serial * 37 % 5000,
            "canonical": site_url(self.name, page.path),
            "crumbs": self._crumb_html(target, plan["crumbs"], column, self.text_body),
            "paragraphs": self.paragraphs_html(
                page,
                self.href(target, attachment[0]) if attachment else None,
                {k.label: self.href(target, k) for k in plan.get("files", [])},
            ),
            "related": related,
            "prevnext": prevnext,
            "origin": f'原文鏈接：<a href="{self.href(target, origin[0])}">{title}</a>' if origin else "",
            "comments": self.href(target, Link(self.name, page.path, suffix="#comments")),
            "home_url": site_url(self.name, "/"),
            "nav": self._nav(target, plan),
        }

    @staticmethod
    def _number_shown(page: ArticlePage) -> str:
        article = get_article(page.article_id)
        return article.number_display or article.document_number or ""

    def render_article(self, target: str, page: ArticlePage) -> str:
        plan = self.article_plan(page)
        context = self.article_context(target, page, plan)
        sections = _templates(self.name)
        head = sections["article_head"].substitute(context) if "article_head" in sections else ""
        # a column may have its own article template (an information-disclosure column)
        body = sections.get(f"article_{page.column}", sections["article"]).substitute(context)
        return self._layout(target, plan, f"{page.display_title}{self.title_sep}{self.title}", body, head)

    def _response(self, text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        ctype = f"text/html; charset={self.encoding}" if self.header_charset else "text/html"
        data = text.encode(self.encoding, errors="xmlcharrefreplace")
        return Response(status, {"Content-Type": ctype, **self.extra_headers, **(headers or {})}, data)

    def _simple_page(self, title: str, body: str) -> Response:
        plan = self.common_plan()
        return self._response(self._layout("/", plan, f"{title}_{self.title}", body))

    def not_found(self) -> Response:
        plan = self.common_plan()
        body = self.fill("notfound", home="/")
        return self._response(self._layout("/", plan, f"页面不存在_{self.title}", body), status=404)

    def _serve(self, path: str, request: Request) -> Response:
        kind, column, number, page = self.kinds[path]
        if kind == "home":
            return self._response(self.render_home(path))
        if kind == "list":
            assert column is not None
            return self._response(self.render_list(path, column, number))
        assert page is not None
        modified = format_datetime(
            datetime.combine(date.fromisoformat(page.date), datetime.min.time(), UTC), usegmt=True
        )
        return self._response(self.render_article(path, page), headers={"Last-Modified": modified})


class MinistrySite(PortalSite):
    """Ministry portal, TRS WCM style: ``/kjbgz/202403/t20240315_189123.html``."""

    slug = "most"
    role = "issuer"
    title = "中华人民共和国科学技术部"
    columns_spec = (("kjbgz", "科技部工作动态"), ("tztg", "通知通告"))
    compress = True
    link_style = "relative"
    dot = True
    crumb_sep = " &gt; "
    serial_base = 189000
    para_html = '<p style="text-indent: 2em;">{}</p>'
    robots_more = "\nUser-agent: BadBot\nDisallow: /\n\nSitemap: @@SITE:most@@/sitemap.xml\n"

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/{column.key}/{day:%Y%m}/t{day:%Y%m%d}_{serial}.html"

    def finalize(self, page_size: int) -> None:
        super().finalize(page_size)
        pages = [(path, kind[3]) for path, kind in self.kinds.items() if kind[3] is not None]
        entry = "<url><loc>{}</loc><lastmod>{}</lastmod></url>\n"
        urls = "".join(
            entry.format(site_url(self.name, p), article_date(page.article_id)) for p, page in pages
        )
        xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
        self.add_route("/sitemap.xml", Response(200, {"Content-Type": "application/xml"}, xml.encode()))


class ProvinceSite(PortalSite):
    """Provincial department: GBK, meta gb2312, ``/kjt/gzdt/2016/11/18/3f2a9c01b7de.shtml``."""

    slug = "sckjt"
    role = "issuer"
    title = "四川省科学技术厅"
    columns_spec = (("gzdt", "工作动态"), ("tzgg", "通知公告"))
    encoding = "gbk"
    header_charset = False
    server_name = "Apache"
    disallowed_dirs = ("/admin/", "/private/", "/kjt/search/")
    serial_base = 5000
    para_html = "<p>&nbsp;&nbsp;&nbsp;&nbsp;{}</p>"
    sig_html = '<p align="right">{}</p>'

    def list_path(self, column: Column, page: int) -> str:
        return (
            f"/kjt/{column.key}/newschild.shtml"
            if page == 0
            else f"/kjt/{column.key}/newschild_{page + 1}.shtml"
        )

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return ()

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/kjt/{column.key}/{day.year}/{day.month}/{day.day}/{_hex(self.name, serial)}.shtml"

    def attachment_path(self, page: ArticlePage) -> str:
        return f"{page.path.removesuffix('.shtml')}/files/{_hex('file', page.serial)}.pdf"


class JcmsSite(PortalSite):
    """Region department on jcms: ``/art/2017/10/30/art_1233_7012.html``, ``?uid=&pageNum=`` lists.

    Its pages are UTF-8 bytes while the template still declares gb2312 (and the header says nothing).
    """

    slug = "xjkjt"
    title = "新疆维吾尔自治区科学技术厅"
    columns_spec = (("gzdt", "工作动态"), ("tzgg", "通知公告"))
    header_charset = False
    server_name = "Tengine"
    serial_base = 7000
    page_size = 2
    para_html = (
        '<p class="MsoNormal" style="text-indent:32.0pt;line-height:28.0pt">'
        '<span style="font-family:仿宋_GB2312;font-size:16.0pt">{}</span></p>'
    )
    sig_html = (
        '<p class="MsoNormal" align="right" style="text-align:right">'
        '<span style="font-family:仿宋_GB2312;font-size:16.0pt">{}</span></p>'
    )

    def list_path(self, column: Column, page: int) -> str:
        base = f"/col/col{column.ident}/index.html"
        return base if page == 0 else f"{base}?uid=4567&pageNum={page + 1}"

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return (f"/col/col{column.ident}/",)

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/art/{day.year}/{day.month}/{day.day}/art_{column.ident}_{serial}.html"

    def attachment_path(self, page: ArticlePage) -> str:
        return f"/module/download/downfile.jsp?classid=0&filename={_hex('file', page.serial)}.pdf"


class ExchangeSite(PortalSite):
    """Technology exchange in the style of sample 004, ``<base href>`` and base-relative links."""

    slug = "ctex"
    role = "repost"
    title = "中国技术交易所"
    columns_spec = (("zxdt/zcfg/dfkjzc", "地方科技政策"), ("zxdt/jydt", "交易动态"))
    link_style = "base"
    base_dir = "/article/"
    crumb_sep = "&gt; "
    serial_base = 28600
    page_size = 2
    para_html = "<p>\u3000\u3000{}</p>"
    sig_html = '<p style="text-align:right">{}</p>'

    def __init__(self, friends: Mapping[str, str], *, crawl_delay: float | None = None) -> None:
        super().__init__(friends, crawl_delay=crawl_delay)
        self.columns[0].trail = ("资讯大厅", "政策法规")
        self.columns[1].trail = ("资讯大厅",)

    def list_path(self, column: Column, page: int) -> str:
        return (
            f"/article/{column.key}/index.shtml" if page == 0 else f"/article/{column.key}/index_{page}.shtml"
        )

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return (f"/article/{column.key}/",)

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/article/{column.key}/{day:%Y%m}/{day:%Y%m}{serial:08d}.shtml"


class HitechSite(PortalSite):
    """High-tech-zone research site on DedeCMS, in the style of sample 002."""

    slug = "hitech"
    title = "高新园区研究网"
    columns_spec = (
        ("gxyxw", "高新院新闻"), ("zcjd", "政策解读"), ("gxqxw", "高新区新闻"),
        ("qyjj", "区域经济研究"), ("jkqxw", "经济开发区新闻"), ("kjcx", "科技创新"),
        ("zxcy", "战略性新兴产业研究"), ("hydj", "行业洞见"), ("ydyl", "一带一路新闻"),
        ("zhcs", "智慧城市案例"), ("cygh", "产业规划"), ("yqgh", "园区规划"), ("zhcsnews", "智慧城市news"),
    )  # fmt: skip
    server_name = "Apache/2.2.15 (CentOS)"
    compress = True
    serial_base = 1200
    page_size = 2

    def list_path(self, column: Column, page: int) -> str:
        return f"/{column.key}/" if page == 0 else f"/{column.key}/list_{column.ident - 1232}_{page + 1}.html"

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return (f"/{column.key}/index.html",)

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/{column.key}/{day:%Y}/{day:%m%d}/{serial}.html"


class RepostSite(PortalSite):
    """Repost portal: Traditional with readings, a 投稿郵箱 line, links to the originals."""

    slug = "repost"
    role = "repost"
    title = "川北在線"
    columns_spec = (
        ("news", "新聞"),
        ("caijing", "財經"),
        ("keji", "科技"),
        ("jiaoyu", "教育"),
        ("fangchan", "房產"),
    )
    link_style = "relative"
    serial_base = 352000
    traditional = True
    home_label = "首頁"
    footer_labels = ("網站首頁", "管理登錄")

    def list_path(self, column: Column, page: int) -> str:
        return f"/{column.key}/index.html" if page == 0 else f"/{column.key}/list_{page + 1}.html"

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/{column.key}/{day:%Y%m%d}/{serial}.html"


class LegacySite(PortalSite):
    """County bureau on an old ASP CMS: GBK with no charset anywhere, ``ShowArticle.asp?ArticleID=``."""

    slug = "haixi"
    title = "海西州科学技术局"
    columns_spec = (("1", "工作动态"), ("2", "通知公告"))
    encoding = "gbk"
    header_charset = False
    server_name = "Microsoft-IIS/6.0"
    extra_headers: ClassVar[Mapping[str, str]] = {"X-Powered-By": "ASP.NET"}
    link_style = "relative"
    crumb_sep = " &gt;&gt; "
    admin_path = "/Admin/Admin_Login.asp"
    disallowed_dirs = ("/Admin/", "/private/")
    crawl_delay_s = 1.0
    serial_base = 100
    page_size = 2
    takes_generated = False  # its Crawl-delay would make large crawls crawl
    para_html = "&nbsp;&nbsp;&nbsp;&nbsp;{}<br>"
    sig_html = '<div align="right">{}</div>'
    dead_special = "/Special/2019kjz/Index.html"

    def list_path(self, column: Column, page: int) -> str:
        base = f"/Article/ShowClass.asp?ClassID={column.key}"
        return base if page == 0 else f"{base}&page={page + 1}"

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return ()

    def home_aliases(self) -> tuple[str, ...]:
        return ("/Index.asp", "/index.asp")

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/Article/ShowArticle.asp?ArticleID={serial}"

    def attachment_path(self, page: ArticlePage) -> str:
        return f"/UploadFiles/{page.date[:4]}{page.serial}.pdf"


class DisclosureSite(PortalSite):
    """Provincial department with a 政府信息公开 section (Hanweb style): policy documents with their
    索引号/发布机构/文号/成文日期 table or list, news with a 发布机构 line, ``标题 - 站名`` titles.

    Added after the first seven sites (port 8808) and takes no generated articles, so that every
    page of the others keeps its URL and content."""

    slug = "zjkjt"
    role = "issuer"
    title = "浙江省科学技术厅"
    columns_spec = (("zcwj", "政策文件"), ("tzgg", "通知公告"), ("gzdt", "工作动态"))
    server_name = "openresty"
    serial_base = 2487000
    page_size = 2
    takes_generated = False
    title_sep = " - "
    shows_numbers = True
    para_html = '<p style="text-indent:2em">{}</p>'
    sig_html = '<p style="text-align:right">{}</p>'

    def list_path(self, column: Column, page: int) -> str:
        return f"/col/{column.key}/index.html" if page == 0 else f"/col/{column.key}/index_{page}.html"

    def list_aliases(self, column: Column) -> tuple[str, ...]:
        return (f"/col/{column.key}/",)

    def article_path(self, column: Column, day: date, serial: int) -> str:
        return f"/{column.key}/{day:%Y}/{day:%m%d}/art_{serial}.html"


PORTALS: tuple[type[PortalSite], ...] = (
    MinistrySite, ProvinceSite, JcmsSite, ExchangeSite, HitechSite, RepostSite, LegacySite, DisclosureSite,
)  # fmt: skip
#: The standard sites, in port order (``DEFAULT_PORT_BASE + index``).
SITE_NAMES: tuple[str, ...] = tuple(p.slug for p in PORTALS)

# Where each base article lives: (article id, (site, column) of the original, reposts).
PLACEMENTS: tuple[tuple[str, tuple[str, str], tuple[tuple[str, str, str], ...]], ...] = (
    ("s000-qinghai-salt-lake-cluster", ("most", "kjbgz"),
     (("ctex", "zxdt/zcfg/dfkjzc", REPOST), ("repost", "keji", REPOST), ("haixi", "1", REPOST))),
    ("s001-torch-qinghai-clusters", ("most", "kjbgz"),
     (("haixi", "1", ADDED), ("hitech", "gxqxw", CUT), ("repost", "keji", REPOST))),
    ("s002-yongchuan-rongchang-hitech", ("hitech", "gxqxw"), (("repost", "keji", REPOST),)),
    ("s003-xinjiang-alliance-clusters", ("xjkjt", "gzdt"), (("repost", "keji", REPOST),)),
    ("s004-sichuan-guangan-consultation", ("sckjt", "gzdt"), (("ctex", "zxdt/zcfg/dfkjzc", REPOST),)),
    ("sc-mianyang-consultation", ("sckjt", "gzdt"), ()),
    ("sc-nanchong-consultation", ("sckjt", "gzdt"), ()),
    ("most-sme-evaluation-notice", ("most", "tztg"), ()),
    ("most-field-station-notice", ("most", "tztg"), ()),
    ("most-national-work-conference", ("most", "kjbgz"), (("most", "kjbgz", ORPHAN),)),
    ("most-evaluation-reform-meeting", ("most", "kjbgz"), ()),
    ("most-science-popularization-month", ("most", "kjbgz"), (("xjkjt", "gzdt", REPOST),)),
    ("sc-project-call-notice", ("sckjt", "tzgg"), ()),
    ("sc-tech-transfer-meeting", ("sckjt", "gzdt"), (("ctex", "zxdt/zcfg/dfkjzc", REPOST),)),
    ("xj-rd-project-notice", ("xjkjt", "tzgg"), ()),
    ("xj-changji-agri-park", ("xjkjt", "gzdt"), ()),
    ("haixi-science-week-notice", ("haixi", "2"), ()),
    ("haixi-salt-lake-forum", ("haixi", "1"), ()),
    ("ctex-materials-roadshow", ("ctex", "zxdt/jydt"), ()),
    ("ctex-broker-training-notice", ("ctex", "zxdt/jydt"), ()),
    ("torch-incubator-evaluation-notice", ("hitech", "zcjd"), ()),
    ("zgc-frontier-enterprise-notice", ("hitech", "zcjd"), ()),
    ("hitech-cluster-exchange-wuhan", ("hitech", "gxqxw"), ()),
    ("nanchong-tech-commissioners", ("repost", "keji"), ()),
    # the information-disclosure portal's documents (data/policies.toml)
    ("zj-innovation-voucher-measures", ("zjkjt", "zcwj"), ()),
    ("zj-lab-management-rules", ("zjkjt", "zcwj"), ()),
    ("zj-sme-evaluation-service-notice", ("zjkjt", "zcwj"), ()),
    ("zj-rd-program-call", ("zjkjt", "tzgg"), ()),
    ("zj-science-base-recognition-notice", ("zjkjt", "tzgg"), ()),
    ("zj-provincial-work-conference", ("zjkjt", "gzdt"), (("repost", "keji", REPOST),)),
    ("zj-aksu-cooperation-meeting", ("zjkjt", "gzdt"), ()),
    ("zj-sme-list-announcement", ("zjkjt", "gzdt"), ()),
    # the newest on their sites (so no earlier page's serial or URL moves): notices with files
    ("most-transfer-agency-measures-notice", ("most", "tztg"), ()),
    ("sc-transfer-agency-measures-forward", ("sckjt", "tzgg"), ()),
)  # fmt: skip


# -- the web --------------------------------------------------------------------------------------


class SampleWeb:
    """Every site of the sample web, its routes, and the ground truth. Build with :func:`build_site`."""

    def __init__(self, scale: int = 1) -> None:
        self.scale = scale
        self.sites: dict[str, Site] = {}
        self.standard_sites: tuple[str, ...] = ()
        self.articles: dict[PageKey, ArticlePage] = {}  # every article page
        self.disallowed: set[PageKey] = set()  # linked pages robots.txt forbids
        self.broken: set[PageKey] = set()  # linked pages that answer 404
        self.attachments: set[PageKey] = set()  # linked PDFs
        #: Every attachment file with its ground truth (title, type, expected text), PDFs included.
        self.files: dict[PageKey, SampleFile] = {}

    # -- routes

    def add_site(
        self,
        name: str,
        *,
        disallow: Iterable[str] = ("/admin/",),
        crawl_delay: float | None = None,
        server: str = "nginx",
        gzip: bool = False,
    ) -> Site:
        """A bare site for hostile routes, served on the next port. Add it before serving."""
        if name in self.sites:
            raise ValueError(f"site {name!r} already exists")
        site = Site(name, disallow=disallow, crawl_delay=crawl_delay, server=server, gzip=gzip)
        self.sites[name] = site
        return site

    def add_route(self, site: str, path: str, route: Route) -> None:
        """Serve ``route`` at ``path`` (may have a query) on ``site``; works while serving too."""
        self.sites[site].add_route(path, route)

    def add_routes(self, site: str, routes: Mapping[str, Route]) -> None:
        for path, route in routes.items():
            self.add_route(site, path, route)

    def respond(self, request: Request) -> Response:
        """The response to a request (placeholders not yet resolved; the server does that)."""
        site = self.sites[request.site]
        found = site.lookup(request.target)
        if found is None:
            return site.not_found()
        route = found[1]
        return route if isinstance(route, Response) else route(request)

    def fetch(self, site: str, target: str = "/") -> Response:
        """``respond`` to a GET without a server (for inspecting pages)."""
        return self.respond(Request("GET", site, target))

    @property
    def page_count(self) -> int:
        """Routes across all sites (pages, aliases, robots.txt, attachments, ...)."""
        return sum(len(s.routes) for s in self.sites.values())

    # -- reachability

    def start_pages(self) -> list[PageKey]:
        return [(name, "/") for name in self.standard_sites]

    def outlinks(self, key: PageKey) -> list[PageKey]:
        site = self.sites.get(key[0])
        return site.outlinks(key[1]) if site else []

    def depths(self) -> dict[PageKey, int]:
        """Link depth of every page reachable from the start pages without robots-disallowed pages."""
        depth = dict.fromkeys(self.start_pages(), 0)
        queue = deque(depth)
        while queue:
            key = queue.popleft()
            for link in self.outlinks(key):
                site = self.sites.get(link[0])
                if link in depth or site is None or site.is_disallowed(link[1]):
                    continue
                depth[link] = depth[key] + 1
                queue.append(link)
        return depth

    def role_of(self, site: str) -> str | None:
        """The role the sample web's source declares for ``site`` (:attr:`PortalSite.role`)."""
        portal = self.sites.get(site)
        return portal.role if isinstance(portal, PortalSite) else None

    def files_of(self, key: PageKey) -> list[tuple[PageKey, SampleFile]]:
        """The attachment files an article page links with their ground truth, in 附件 order."""
        site = self.sites.get(key[0])
        placed = site.files_of.get(key[1], []) if isinstance(site, PortalSite) else []
        return [((key[0], path), file) for path, file in placed]

    def reachable_articles(self) -> set[PageKey]:
        return {key for key in self.depths() if key in self.articles}

    def required_depth(self) -> int:
        """The max_depth a crawl from the start pages needs to reach every reachable article."""
        depths = self.depths()
        return max((depths[k] for k in self.articles if k in depths), default=0)


def _place(web: SampleWeb, entries: list[tuple[str, str, str, str]]) -> None:
    """Give each (site, column, article id, variant) a serial and URL, oldest first, and register it."""
    per_site: dict[str, list[tuple[date, int, str, str, str]]] = {}
    for order, (site, column, article_id, variant) in enumerate(entries):
        per_site.setdefault(site, []).append((article_date(article_id), order, column, article_id, variant))
    placed: list[tuple[PortalSite, ArticlePage]] = []
    originals: dict[str, PageKey] = {}
    for name, items in per_site.items():
        portal = web.sites[name]
        assert isinstance(portal, PortalSite)
        items.sort()
        for index, (day, _order, column, article_id, variant) in enumerate(items):
            serial = portal.serial_base + 1 + index * 3
            path = portal.article_path(portal.by_key[column], day, serial)
            page = ArticlePage(
                name, path, article_id, column, variant, None, portal.traditional, serial,
                shows_number=portal.shows_numbers,
            )  # fmt: skip
            placed.append((portal, page))
            if variant == ORIGINAL:
                originals[article_id] = page.key
    for portal, page in placed:
        if page.variant != ORIGINAL:
            page = replace(page, original=originals[page.article_id])
        portal.add_page(page, listed=page.variant != ORPHAN)
        web.articles[page.key] = page


def build_site(scale: int = 1, *, crawl_delay: float | None = 1.0) -> SampleWeb:
    """Build the sample web. ``scale`` = 1: the 34 base articles on 47 article pages; each further
    step adds 20 generated articles (every 10th also reposted on another site), so about
    ``47 + 22 * (scale - 1)`` article pages: scale 90 gives ~2,000, scale 900 ~20,000.
    Pages are rendered on request, so building even the largest web is quick and small.
    ``crawl_delay`` is the robots.txt Crawl-delay of the site that has one (haixi; None: drop it)."""
    if scale < 1:
        raise ValueError("scale must be >= 1")
    web = SampleWeb(scale)
    friends = {p.slug: p.title for p in PORTALS}
    for portal in PORTALS:
        web.sites[portal.slug] = portal(friends, crawl_delay=crawl_delay)
    web.standard_sites = SITE_NAMES
    entries: list[tuple[str, str, str, str]] = []
    for article_id, (site, column), reposts in PLACEMENTS:
        entries.append((site, column, article_id, ORIGINAL))
        entries += [(s, c, article_id, variant) for s, c, variant in reposts]
    eligible = [
        (portal.slug, column)
        for portal in PORTALS
        if portal.takes_generated
        for column in dict.fromkeys(c for _, (s, c), _ in PLACEMENTS if s == portal.slug)
    ]
    for n in range((scale - 1) * GENERATED_PER_SCALE):
        article_id = f"{GENERATED_PREFIX}{n:06d}"
        site, column = eligible[n % len(eligible)]
        entries.append((site, column, article_id, ORIGINAL))
        if n % 10 == 0:  # an exact repost on another site
            others = [e for e in eligible if e[0] != site]
            entries.append((*others[n % len(others)], article_id, REPOST))
    _place(web, entries)
    for name in SITE_NAMES:
        built = web.sites[name]
        assert isinstance(built, PortalSite)
        built.finalize(built.page_size if scale == 1 else LARGE_PAGE_SIZE)
        web.disallowed |= {(name, built.private_path), (name, built.admin_path)}
        web.broken |= {(name, built.dead_path), (name, built.dead_special)}
        web.attachments |= {(name, path) for path in built.attachment_of.values()}
        web.files.update(((name, path), file) for placed in built.files_of.values() for path, file in placed)
    return web
