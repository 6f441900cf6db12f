"""``python -m bench.archive``: what the raw archive costs per page, on the sample web.

Fetches every page of a sample web (``--scale``) once through :class:`crawler.fetch.Fetcher` on
127.0.0.1, then writes the fetched responses to a WARC archive, and reports per page: the
fetch's CPU time, the archive write's CPU time (serialization, gzip, file write), the archive's
bytes and the body bytes. CPU time (``time.process_time``), not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from crawler.archive import DEFAULT_COMPRESS_LEVEL, ArchiveWriter, archive_files
from crawler.fetch import Fetcher, FetchResult, make_client
from crawler.samplesite import build_site, serve_site
from settings import Settings


async def _fetch_all(urls: list[str]) -> tuple[list[FetchResult], float]:
    limits = Settings(user_agent="policy-crawler-bench/1", allowed_networks=["127.0.0.0/8"]).fetch_limits()
    results = []
    async with make_client(limits) as client:
        fetcher = Fetcher(client, limits)
        started = time.process_time()
        for url in urls:
            results.append(await fetcher.fetch(url))
        return results, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--level", type=int, default=DEFAULT_COMPRESS_LEVEL, help="gzip level")
    args = parser.parse_args(argv)
    web = build_site(args.scale)
    with serve_site(web) as site:
        urls = [site.url(*key) for key in web.articles] + site.start_urls()
        results, fetch_cpu = asyncio.run(_fetch_all(urls))
    pages = len(results)
    body = sum(len(r.body) for r in results)
    wire = sum(len(r.exchange.raw_body) for r in results if r.exchange is not None)
    with tempfile.TemporaryDirectory() as directory:
        writer = ArchiveWriter(directory, compress_level=args.level)
        started = time.process_time()
        for result in results:
            writer.write_fetch(result, kind="article", source="sample-site")
        writer.close()
        write_cpu = time.process_time() - started
        size = sum(p.stat().st_size for p in archive_files(Path(directory)))
    print(f"pages {pages}, mean body {body / pages / 1000:.1f} kB ({wire / pages / 1000:.1f} kB on the wire)")
    print(f"fetch CPU            {fetch_cpu / pages * 1000:6.3f} ms/page (client side, without the archive)")
    print(f"archive write CPU    {write_cpu / pages * 1000:6.3f} ms/page (gzip level {args.level})")
    print(f"archive bytes        {size / pages:8.0f} bytes/page ({size / body:.0%} of the body bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
