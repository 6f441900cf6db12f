"""``make bench`` (issue 7): crawl throughput and cost on a local web, against limits and a Scrapy peer.

Not part of the test suite (``tests/test_bench_smoke.py`` only checks that it runs end to end).
Modules: :mod:`bench.run` (the harness, ``python -m bench``), :mod:`bench.web` (the pre-rendered,
realistically weighted sample web), :mod:`bench.server` (the static server), :mod:`bench.measure`
(process-tree CPU and memory from ``/proc``), :mod:`bench.limit` (extraction limits),
:mod:`bench.scrapy_peer` (the Scrapy spider), :mod:`bench.cluster` (the Celery run).
"""
