"""Source files: every shipped seed is valid and plausible; malformed files are rejected clearly.

A bad source file must name the file, the field and the problem, and must not stop the other
files from loading (``load_sources_report``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crawler.errors import ConfigError
from crawler.samplesite import DEFAULT_PORT_BASE, SITE_NAMES, build_site
from crawler.samplesite.site import PortalSite
from crawler.sources import Source, load_source, load_sources_report
from seeds import SEEDS_DIR

REAL_PORTALS = {
    "most-news", "most-policy", "sc-kjt", "qinghai-kjt", "xinjiang-kjt", "ctex", "zgc", "chinatorch", "dstuf",
}  # fmt: skip

# URLs in the shape each real portal uses: (article URLs, list URLs). Article patterns must take
# the first and leave the second (a list page taken for an article would be stored as one).
URL_SHAPES: dict[str, tuple[list[str], list[str]]] = {
    "most-news": (
        ["https://www.most.gov.cn/kjbgz/202403/t20240315_190123.html",
         "http://www.most.gov.cn/kjbgz/201607/t20160707_126445.htm"],
        ["https://www.most.gov.cn/kjbgz/", "https://www.most.gov.cn/kjbgz/index_3.html"],
    ),
    "most-policy": (
        ["https://www.most.gov.cn/xxgk/xinxifenlei/fdzdgknr/fgzc/gfxwj/gfxwj2023/202312/t20231221_189240.html",
         "https://www.most.gov.cn/tztg/202403/t20240301_189999.html"],
        ["https://www.most.gov.cn/xxgk/xinxifenlei/fdzdgknr/fgzc/",
         "https://www.most.gov.cn/xxgk/xinxifenlei/fdzdgknr/fgzc/zcjd/index_1.html",
         "https://www.most.gov.cn/tztg/index_2.html"],
    ),
    "sc-kjt": (
        ["https://kjt.sc.gov.cn/kjt/gstz/2024/11/5/82323ab28c5f.shtml"],
        ["https://kjt.sc.gov.cn/kjt/gstz/newschild.shtml", "https://kjt.sc.gov.cn/kjt/gzdt/newschild_2.shtml"],
    ),
    "qinghai-kjt": (
        ["https://kjt.qinghai.gov.cn/content/show/cid/8/id/12345"],
        ["https://kjt.qinghai.gov.cn/content/lists/cid/8/pid/26/page/2"],
    ),
    "xinjiang-kjt": (
        ["https://kjt.xinjiang.gov.cn/kjt/c100264/202403/5d41b492352c495f93a206dac341f039.shtml"],
        ["https://kjt.xinjiang.gov.cn/kjt/c100264/common_list.shtml",
         "https://kjt.xinjiang.gov.cn/kjt/c100264/common_list_2.shtml"],
    ),
    "ctex": (
        ["https://www.ctex.cn/article/zxdt/zcfg/dfkjzc/xn/sc/201611/20161100028613.shtml"],
        ["https://www.ctex.cn/article/zxdt/zcfg/dfkjzc/", "https://www.ctex.cn/article/zxdt/jydt/index_2.shtml"],
    ),
    "zgc": (
        ["https://zgcgw.beijing.gov.cn/zgc/zwgk/tzgg/10870021/index.html",
         "https://zgcgw.beijing.gov.cn/zgc/zwgk/tzgg/202403/t20240315_3590123.html"],
        ["https://zgcgw.beijing.gov.cn/zgc/zwgk/tzgg/index.html",
         "https://zgcgw.beijing.gov.cn/zgc/zwgk/tzgg/index_1.html"],
    ),
    "chinatorch": (
        ["https://www.chinatorch.gov.cn/kjfw/tjbb/202501/0ece4cf02678428b935f38c3c1a572d5.shtml"],
        ["https://www.chinatorch.gov.cn/kjb/tzgg/list.shtml", "https://www.chinatorch.gov.cn/kjb/tzgg/list_2.shtml"],
    ),
    "dstuf": (
        ["http://www.dstuf.com/keji/2015/0831/123456.html"],
        ["http://www.dstuf.com/keji/", "http://www.dstuf.com/keji/list_3_2.html"],
    ),
}  # fmt: skip


def _matches(patterns: list[str], url: str) -> bool:
    return any(re.search(p, url) for p in patterns)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Source]:
    report = load_sources_report(SEEDS_DIR)
    assert not report.errors, [str(e) for e in report.errors]
    return report.sources


def test_every_shipped_seed_loads(shipped: dict[str, Source]) -> None:
    assert set(shipped) == REAL_PORTALS | {"sample-site"}
    for path in SEEDS_DIR.glob("*.toml"):
        assert load_source(path).id == path.stem


def test_patterns_compile(shipped: dict[str, Source]) -> None:
    for source in shipped.values():
        for pattern in [*source.article_patterns, *source.list_patterns, *source.deny_patterns]:
            re.compile(pattern)


def test_real_portals_are_polite_and_scheduled(shipped: dict[str, Source]) -> None:
    for source_id in REAL_PORTALS:
        source = shipped[source_id]
        assert source.per_host_delay is not None and source.per_host_delay >= 1.0, source_id
        assert source.schedule and source.description, source_id
        assert source.article_patterns and source.list_patterns, source_id
        assert all("127.0.0.1" not in host for host in source.allowed_hosts), source_id


@pytest.mark.parametrize("source_id", sorted(URL_SHAPES))
def test_real_portal_patterns_tell_articles_from_lists(shipped: dict[str, Source], source_id: str) -> None:
    source = shipped[source_id]
    articles, lists = URL_SHAPES[source_id]
    for url in articles:
        assert _matches(source.article_patterns, url), url
    for url in lists:
        assert not _matches(source.article_patterns, url), url
        assert _matches(source.list_patterns, url), url
    for url in source.start_urls:
        assert not _matches(source.article_patterns, url), url


def test_sample_site_seed_matches_the_sample_web(shipped: dict[str, Source]) -> None:
    source = shipped["sample-site"]
    netlocs = [f"127.0.0.1:{DEFAULT_PORT_BASE + i}" for i in range(len(SITE_NAMES))]
    assert source.start_urls == [f"http://{n}/" for n in netlocs]
    assert source.allowed_hosts == netlocs
    web = build_site()
    assert web.required_depth() <= source.max_depth
    url = {name: f"http://{netloc}" for name, netloc in zip(SITE_NAMES, netlocs, strict=True)}
    for site, path in web.articles:
        assert _matches(source.article_patterns, url[site] + path), (site, path)
    for name in SITE_NAMES:
        assert not _matches(source.article_patterns, url[name] + "/")
        portal = web.sites[name]
        assert isinstance(portal, PortalSite)
        for path, kind in portal.kinds.items():
            if kind[0] == "list":
                assert _matches(source.list_patterns, url[name] + path), (name, path)
                assert not _matches(source.article_patterns, url[name] + path), (name, path)


# -- malformed files ------------------------------------------------------------------------------

GOOD = """
id = "{id}"
name = "A good source"
start_urls = ["https://www.most.gov.cn/kjbgz/"]
article_patterns = ['/t\\d{{8}}_\\d+\\.html?$']
schedule = "0 */6 * * *"
"""


def _good_but(stem: str, old: str = "", new: str = "") -> str:
    """The good file for ``stem`` with one edit."""
    return GOOD.format(id=stem).replace(old, new) if old else GOOD.format(id=stem)


BAD_FILES = {
    # file stem: (content, field named in the message, words of the problem)
    "bad-toml": ('id = "bad-toml"\nname = "unterminated\n', None, "not valid TOML"),
    "missing-field": ('id = "missing-field"\nname = "No start URLs"\n', "start_urls", "required"),
    "bad-regex": (_good_but("bad-regex", "'/t\\d", "'/t(\\d"), "article_patterns", "regular expression"),
    "bad-cron": (_good_but("bad-cron", "0 */6 * * *", "0 */6 * *"), "schedule", "5 fields"),
    "bad-cron-range": (_good_but("bad-cron-range", "0 */6", "61 */6"), "schedule", "outside"),
    "unknown-field": (_good_but("unknown-field") + "max_deepth = 3\n", "max_deepth", "not permitted"),
    "id-mismatch": (GOOD.format(id="another-name"), "id", "file name"),
    "relative-url": (_good_but("relative-url", "https://www.most.gov.cn", ""), "start_urls", "absolute"),
}  # fmt: skip


def _write(directory: Path, stem: str, text: str) -> Path:
    path = directory / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_source_file_loads(tmp_path: Path) -> None:
    source = load_source(_write(tmp_path, "good", GOOD.format(id="good")))
    assert source.allowed_hosts == ["www.most.gov.cn"]  # defaults to the start URLs' hosts


@pytest.mark.parametrize("stem", sorted(BAD_FILES))
def test_malformed_file_names_file_field_and_problem(tmp_path: Path, stem: str) -> None:
    text, field, problem = BAD_FILES[stem]
    path = _write(tmp_path, stem, text)
    with pytest.raises(ConfigError) as caught:
        load_source(path)
    message = str(caught.value)
    assert str(path) in message
    if field:
        assert f"'{field}" in message, message
    assert problem in message, message


def test_bad_files_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    for stem, (text, _, _) in BAD_FILES.items():
        _write(tmp_path, stem, text)
    _write(tmp_path, "good", GOOD.format(id="good"))
    report = load_sources_report(tmp_path)
    assert list(report.sources) == ["good"]
    assert len(report.errors) == len(BAD_FILES)
    for stem in BAD_FILES:
        assert sum(f"{stem}.toml" in str(e) for e in report.errors) == 1, stem
