"""The Scrapy peer: a straightforward Scrapy spider over the same web, for comparison.

``python -m bench.scrapy_peer SOURCE_JSON --out result.json``

What a competent engineer writes first with Scrapy: default settings except ``ROBOTSTXT_OBEY``
on, no AutoThrottle, ``LOG_LEVEL`` WARNING; start at the sources' start URLs, follow links whose
host is in the source and whose URL matches its list or article patterns (the same patterns our
crawler uses), and call ``trafilatura.extract`` on article pages in the callback. Scrapy's own
request fingerprinting removes duplicate URLs. Bench-only: Scrapy is in the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def build_spider(source: dict[str, Any]) -> type:
    import scrapy
    import trafilatura

    article = [re.compile(p) for p in source.get("article_patterns", [])]
    listing = [re.compile(p) for p in source.get("list_patterns", [])]
    deny = [re.compile(p) for p in source.get("deny_patterns", [])]
    hosts = set(source["allowed_hosts"])

    class PolicySpider(scrapy.Spider):
        name = "policy"
        allowed_domains = sorted({h.split(":")[0] for h in hosts})
        start_urls = list(source["start_urls"])  # noqa: RUF012 - Scrapy's own attribute

        def parse(self, response: Any) -> Any:
            if not hasattr(response, "text"):
                return  # not a text response (an attachment): nothing to parse
            url = response.url
            if any(p.search(url) for p in article):
                text = trafilatura.extract(response.text, url=url)
                yield {"url": url, "chars": len(text or "")}
            for href in response.css("a::attr(href)").getall():
                target = response.urljoin(href)
                if urlsplit(target).netloc not in hosts or any(p.search(target) for p in deny):
                    continue
                if any(p.search(target) for p in article) or any(p.search(target) for p in listing):
                    yield scrapy.Request(target, callback=self.parse)

    return PolicySpider


def run(source: dict[str, Any]) -> dict[str, Any]:
    from scrapy.crawler import CrawlerProcess

    settings = {
        "ROBOTSTXT_OBEY": True,
        "AUTOTHROTTLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(build_spider(source))
    started = time.monotonic()
    process.crawl(crawler)
    process.start()
    elapsed = time.monotonic() - started
    stats = crawler.stats.get_stats() if crawler.stats else {}
    return {
        "elapsed": elapsed,
        "items": stats.get("item_scraped_count", 0),
        "responses": stats.get("response_received_count", 0),
        "requests": stats.get("downloader/request_count", 0),
        "status_200": stats.get("downloader/response_status_count/200", 0),
        "errors": {k: v for k, v in stats.items() if "exception" in k or "error" in k},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrapy_peer")
    parser.add_argument("source", help="JSON file: start_urls, allowed_hosts, article/list/deny patterns")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as handle:
        source = json.load(handle)
    result = run(source)
    with open(args.out, "w") as handle:
        json.dump(result, handle, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
