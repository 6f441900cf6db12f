"""``python -m crawler.samplesite``: serve the sample web until Ctrl-C (for manual crawling).

The default ports (8801...) are those of ``seeds/sample-site.toml``, so that source crawls it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from crawler.samplesite.server import DEFAULT_PORT_BASE, serve_site
from crawler.samplesite.site import build_site


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.samplesite", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"first port; sites take consecutive ports (default {DEFAULT_PORT_BASE}; 0 = free ports)",
    )
    parser.add_argument("--scale", type=int, default=1, help="multiply the generated articles (default 1)")
    args = parser.parse_args(argv)
    web = build_site(args.scale)
    try:
        running = serve_site(web, args.host, port_base=args.port_base or None)
    except OSError as exc:
        parser.exit(1, f"error: {exc}\n(choose other ports with --port-base)\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running:
        print(f"Serving the sample web ({len(web.articles)} article pages, scale {args.scale}):")
        for name, url in running.base_urls.items():
            print(f"  {name:<8} {url}/")
        print("Press Ctrl-C to stop.", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
