"""policy-crawler's pipeline stages: fetch, robots, links, extract, normalize, dedup, store.

A plain library: nothing in this package imports Celery (see ``workers/`` for that).
"""

__version__ = "0.1.0"
