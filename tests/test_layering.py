"""The design card's boundary: ``crawler/`` is a plain library and never imports Celery."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import crawler


def test_no_crawler_module_imports_celery() -> None:
    modules = [m.name for m in pkgutil.walk_packages(crawler.__path__, "crawler.")]
    assert "crawler.crawl" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'celery' or m.startswith(('celery.', 'kombu')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"crawler modules pulled in: {out.stdout.strip()}"


def test_cli_help_builds_without_celery() -> None:
    code = (
        "import sys\nfrom cli.main import build_parser\nbuild_parser().format_help()\n"
        "print('celery' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
