from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.errors import InvalidURL
from crawler.urls import canonicalize, host_of, is_tracking_param


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTP://WWW.Most.GOV.cn:80/a/../b/./c.html?z=1&a=2#frag", "http://www.most.gov.cn/b/c.html?a=2&z=1"),
        ("https://x.cn:443", "https://x.cn/"),
        ("https://x.cn/a?utm_source=wx&utm_medium=s&id=5", "https://x.cn/a?id=5"),
        ("https://x.cn/a?spm=1.2&from=timeline&isappinstalled=0", "https://x.cn/a"),
        ("http://x.cn/%7euser/%e4%b8%ad", "http://x.cn/~user/%E4%B8%AD"),
        ("http://x.cn/中文/路径.html", "http://x.cn/%E4%B8%AD%E6%96%87/%E8%B7%AF%E5%BE%84.html"),
        ("http://例子.测试/", "http://xn--fsqu00a.xn--0zwm56d/"),
        ("http://user:pw@x.cn/a", "http://x.cn/a"),
        ("http://x.cn/a/", "http://x.cn/a/"),
        ("http://x.cn:8080/../../a", "http://x.cn:8080/a"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("  http://x.cn/a  ", "http://x.cn/a"),
    ],
)
def test_canonical_spellings(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == canonical


def test_same_page_different_spellings_agree() -> None:
    spellings = [
        "http://www.most.gov.cn/kjbgz/t20240315_1.html",
        "HTTP://www.most.gov.cn:80/kjbgz/./t20240315_1.html#comments",
        "http://www.most.gov.cn/xxgk/../kjbgz/t20240315_1.html?utm_source=weibo",
    ]
    assert len({canonicalize(u) for u in spellings}) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://x.cn/",
        "javascript:alert(1)",
        "mailto:a@b.cn",
        "http://",
        "//x.cn/a",
        "http://a:99999/",
        "http://x.cn/\x00",
        "not a url",
        "http://" + "a" * 3000 + ".cn/",
    ],
)
def test_invalid_urls_raise_invalid_url(bad: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(bad)


def test_length_limit_is_configurable() -> None:
    url = "http://x.cn/" + "a" * 100
    assert canonicalize(url, max_length=200)
    with pytest.raises(InvalidURL, match="long"):
        canonicalize(url, max_length=50)


def test_tracking_params() -> None:
    assert is_tracking_param("UTM_Campaign")
    assert is_tracking_param("fbclid")
    assert not is_tracking_param("id")
    assert not is_tracking_param("page")


def test_host_of_keeps_port() -> None:
    assert host_of("http://127.0.0.1:8801/a") == "127.0.0.1:8801"
    assert host_of("https://WWW.most.gov.cn/a") == "www.most.gov.cn"


@given(st.text(max_size=300))
def test_canonicalize_raises_only_invalid_url(text: str) -> None:
    try:
        result = canonicalize(text)
    except InvalidURL:
        return
    assert result.startswith(("http://", "https://"))


@given(
    st.sampled_from(["http", "https", "HTTP"]),
    st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,8}){1,3}", fullmatch=True),
    st.lists(st.text(min_size=1, max_size=8), max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=4),
)
def test_canonicalize_is_idempotent(
    scheme: str, host: str, segments: list[str], query: dict[str, str]
) -> None:
    from urllib.parse import quote, urlencode

    url = f"{scheme}://{host}/" + "/".join(quote(s, safe="") for s in segments)
    if query:
        url += "?" + urlencode(query)
    try:
        once = canonicalize(url)
    except InvalidURL:
        return
    assert canonicalize(once) == once


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://x.cn/a.jsp;jsessionid=0A1B2C?id=3", "http://x.cn/a.jsp?id=3"),
        ("http://x.cn/a.php?PHPSESSID=abc&id=3", "http://x.cn/a.php?id=3"),
        ("http://x.cn/a.asp?ASPSESSIONIDQQ=xyz&ArticleID=9", "http://x.cn/a.asp?ArticleID=9"),
        ("http://x.cn/a?sessionid=1&id=2", "http://x.cn/a?id=2"),
        ("http://x.cn/a?sid=1&id=2", "http://x.cn/a?id=2&sid=1"),  # kept: often a section id
    ],
)
def test_session_ids_are_dropped(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://x.cn/a%2Fb", "http://x.cn/a%2Fb"),  # an encoded slash is not a path separator
        ("http://x.cn/%2F", "http://x.cn/%2F"),
        ("http://x.cn/a/%2E%2E/b", "http://x.cn/b"),  # encoded dots are dots
        ("http://x.cn/100%", "http://x.cn/100%25"),
        ("http://x.cn/%e4%b8%ad", "http://x.cn/%E4%B8%AD"),
        ("http://x.cn/a%3Bjsessionid%3D1", "http://x.cn/a%3Bjsessionid%3D1"),
    ],
)
def test_percent_escapes_follow_rfc3986_normalization(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == canonical
    assert canonicalize(canonical) == canonical
