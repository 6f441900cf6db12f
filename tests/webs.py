"""Local webs the end-to-end tests crawl (served on 127.0.0.1 by crawler.samplesite).

* :func:`add_hostile_site`: a site of every failure a server can cause, with the status and
  reason each URL must end in (:data:`HOSTILE`);
* :func:`add_conformance_sites`: small sites for the scenarios both crawl drivers must handle
  alike (a page that fails once, a page budget, redirects, robots.txt).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx

from crawler.fetch import parse_content_type
from crawler.records import UrlStatus
from crawler.samplesite import (
    ArticlePage,
    RunningSite,
    SampleWeb,
    drip,
    fail_then,
    gzip_bomb,
    html,
    malformed_html,
    not_found,
    oversized,
    pdf,
    redirect,
    redirect_loop,
    server_error,
    site_url,
    slow,
    too_many_requests,
    wrong_meta_charset,
)
from crawler.samplesite.content import generated_article


@dataclass(frozen=True, slots=True)
class ServedArticle:
    """An article page as the sample web's server sends it, with its ground truth."""

    url: str
    page: ArticlePage
    body: bytes
    charset: str | None  # from the Content-Type header


def fetch_articles(site: RunningSite, urls: Iterable[str] | None = None) -> list[ServedArticle]:
    """The served bytes of the site's article pages (all, or ``urls``); each must answer 200."""
    served = []
    with httpx.Client() as client:
        for url in site.truth if urls is None else urls:
            response = client.get(url)
            assert response.status_code == 200, url
            _, charset = parse_content_type(response.headers.get("content-type"))
            served.append(ServedArticle(url, site.truth[url], response.content, charset))
    return served


# path on the hostile site -> (expected URL status, expected reason)
HOSTILE = {
    "/slow.html": (UrlStatus.FAILED_TRANSIENT, "timeout"),
    "/drip.html": (UrlStatus.FAILED_TRANSIENT, "timeout"),
    "/boom.html": (UrlStatus.FAILED_TRANSIENT, "http_500"),
    "/busy.html": (UrlStatus.FAILED_TRANSIENT, "http_429"),
    "/loop-a.html": (UrlStatus.FAILED_PERMANENT, "redirect_loop"),
    "/big.html": (UrlStatus.FAILED_PERMANENT, "too_large"),
    "/bomb.html": (UrlStatus.FAILED_PERMANENT, "too_large"),
    "/doc.html": (UrlStatus.FAILED_PERMANENT, "not_html"),
    "/missing.html": (UrlStatus.FAILED_PERMANENT, "http_404"),
    "/secret/plan.html": (UrlStatus.DISALLOWED, "robots"),
}


def _index(paths: list[str], title: str = "index") -> str:
    links = "".join(f'<li><a href="{path}">{path}</a></li>' for path in paths)
    head = f"<head><meta charset='utf-8'><title>{title}</title></head>"
    return f"<html>{head}<body><ul>{links}</ul></body></html>"


def add_hostile_site(web: SampleWeb, *, slow_seconds: float = 5, retry_after: float = 3) -> None:
    """The hostile site: slow, dripping, failing, looping, huge, compressed-bomb, not-HTML,
    missing and disallowed pages, plus pages that must still extract (broken markup, a wrong
    meta charset, a redirect to a page of the site). A page deadline well below
    ``slow_seconds`` makes the slow ones time out."""
    web.add_site("hostile", disallow=("/secret/",))
    web.add_route("hostile", "/", html(_index([*HOSTILE, "/broken.html", "/charset.html", "/moved.html"])))
    web.add_route("hostile", "/slow.html", slow(slow_seconds))
    web.add_route("hostile", "/drip.html", drip(interval=0.3))
    web.add_route("hostile", "/boom.html", server_error())
    web.add_route("hostile", "/busy.html", too_many_requests(retry_after=retry_after))
    web.add_routes("hostile", redirect_loop("/loop-a.html", "/loop-b.html"))
    web.add_route("hostile", "/big.html", oversized(3 * 2**20))
    web.add_route("hostile", "/bomb.html", gzip_bomb())
    web.add_route("hostile", "/doc.html", pdf())
    web.add_route("hostile", "/missing.html", not_found())
    web.add_route("hostile", "/secret/plan.html", html("<p>never fetched</p>"))
    web.add_route("hostile", "/broken.html", malformed_html())
    web.add_route("hostile", "/charset.html", wrong_meta_charset())
    web.add_route("hostile", "/moved.html", redirect("/charset.html"))


def article_page(number: int, links: Sequence[str] = ()) -> str:
    """A page carrying generated article ``number`` (a story of its own, not one of the sample
    web's), with links after it."""
    article = generated_article(10_000 + number)
    paragraphs = "".join(f"<p>{p}</p>" for p in article.paragraphs)
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return (
        f"<html><head><meta charset='utf-8'><title>{article.title}</title></head>"
        f"<body><h1>{article.title}</h1>{paragraphs}<div>{anchors}</div></body></html>"
    )


#: The conformance sites and what each shows (the sample web and the hostile site come too).
CONFORMANCE_SITES = {
    "flaky": "a page answers 500 once, then 200: retried and stored in the same run",
    "budget": "a chain of articles under a page budget of 3: the rest wait queued (over_budget)",
    "redir": "redirects to a page linked too, two hops, a missing page, itself, another site",
    "robots": "robots.txt disallows a directory; links into it are refused, the rest crawled",
}


def add_conformance_sites(web: SampleWeb) -> None:
    web.add_site("flaky")
    web.add_route("flaky", "/", html(_index(["/later.html", "/steady.html"])))
    arm_flaky(web)
    web.add_route("flaky", "/steady.html", html(article_page(2)))

    web.add_site("budget")
    chain = [f"/p{n}.html" for n in range(1, 7)]
    web.add_route("budget", "/", html(_index(chain[:1])))
    for n, path in enumerate(chain):
        web.add_route("budget", path, html(article_page(3 + n, chain[n + 1 : n + 2])))

    web.add_site("redir")
    web.add_route(
        "redir",
        "/",
        html(_index(["/old.html", "/new.html", "/hop1.html", "/gone.html", "/self.html", "/away.html"])),
    )
    web.add_route("redir", "/old.html", redirect("/new.html"))
    web.add_route("redir", "/new.html", html(article_page(10)))
    web.add_route("redir", "/hop1.html", redirect("/hop2.html", 302))
    web.add_route("redir", "/hop2.html", redirect("/final.html", 307))
    web.add_route("redir", "/final.html", html(article_page(11)))
    web.add_route("redir", "/gone.html", redirect("/nowhere.html"))
    web.add_route("redir", "/nowhere.html", not_found())
    web.add_route("redir", "/self.html", redirect("/self.html"))
    web.add_route("redir", "/away.html", redirect(site_url("robots", "/public/b.html"), 302))

    web.add_site("robots", disallow=("/private/",))
    web.add_route("robots", "/", html(_index(["/private/a.html", "/public/b.html", "/public/c.html"])))
    web.add_route("robots", "/private/a.html", html(article_page(12)))
    web.add_route("robots", "/public/b.html", html(article_page(13)))
    web.add_route("robots", "/public/c.html", html(article_page(14, ["/private/d.html"])))
    web.add_route("robots", "/private/d.html", html(article_page(15)))


def arm_flaky(web: SampleWeb) -> None:
    """(Re)set the flaky page: its next request fails with a 500, the ones after succeed."""
    once = fail_then(html(article_page(1)), failures=1, failure=server_error())
    web.add_route("flaky", "/later.html", once)
