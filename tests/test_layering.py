"""The design card's boundaries, checked on the import graph of the project's own code.

* ``crawler/`` is a plain library: it never imports Celery, and its pipeline modules import
  neither the store, the workers, the seeds, the command line nor the settings;
* the sample site and the evaluation tools stay outside the pipeline's import graph;
* no package imports another in a circle (imports inside functions and ``TYPE_CHECKING``
  blocks count: they are dependencies all the same).
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import crawler

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("crawler", "storage", "workers", "seeds", "cli")
TOP_MODULES = ("settings",)
#: Modules of crawler/ that are tools around the pipeline, not stages of it.
TOOLS = ("crawler.samplesite", "crawler.evaluate", "crawler.neardup_eval")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path
    for name in TOP_MODULES:
        yield name, REPO / f"{name}.py"


def _imports(module: str, path: Path) -> set[str]:
    """Every project module ``module`` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    roots = (*PACKAGES, *TOP_MODULES)
    return {name for name in found if name.split(".")[0] in roots}


GRAPH = {module: _imports(module, path) for module, path in _modules()}


def _top(module: str) -> str:
    return module.split(".")[0]


def _is_tool(module: str) -> bool:
    return any(module == tool or module.startswith(tool + ".") for tool in TOOLS)


def _known(name: str) -> str | None:
    """The project module ``name`` names (``from crawler import errors`` names crawler.errors)."""
    while name and name not in GRAPH:
        name = name.rpartition(".")[0]
    return name or None


def test_pipeline_modules_import_no_store_worker_seed_or_setting() -> None:
    pipeline = [m for m in GRAPH if _top(m) == "crawler" and not _is_tool(m)]
    assert {"crawler.visit", "crawler.crawl", "crawler.fetch", "crawler.records"} <= set(pipeline)
    offenders = {
        module: sorted(name for name in GRAPH[module] if _top(name) != "crawler")
        for module in pipeline
        if any(_top(name) != "crawler" for name in GRAPH[module])
    }
    assert not offenders, f"pipeline modules importing outside crawler/: {offenders}"


def test_tools_stay_outside_the_pipelines_import_graph() -> None:
    reached: set[str] = set()
    pending = [m for m in GRAPH if _top(m) == "crawler" and not _is_tool(m)]
    while pending:
        module = pending.pop()
        for name in GRAPH[module]:
            target = _known(name)
            if target is not None and target not in reached:
                reached.add(target)
                pending.append(target)
    assert not {m for m in reached if _is_tool(m)}, sorted(m for m in reached if _is_tool(m))


def test_no_package_imports_another_in_a_circle() -> None:
    edges: dict[str, set[str]] = {}
    for module, names in GRAPH.items():
        for name in names:
            if _top(name) != _top(module):
                edges.setdefault(_top(module), set()).add(_top(name))

    def cycle_from(start: str, node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                found = cycle_from(start, nxt, [*path, nxt])
                if found:
                    return found
        return None

    cycles = [c for top in sorted(edges) if (c := cycle_from(top, top, [top]))]
    assert not cycles, f"packages importing each other in a circle: {cycles}"
    assert "cli" not in {target for targets in edges.values() for target in targets}, "nothing imports cli"


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
