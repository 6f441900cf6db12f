"""One settings object, read from the environment (prefix ``CRAWLER_``).

Every component (the embedded crawl, the Celery workers, the CLI) reads its configuration from
:func:`get_settings`; nothing else reads ``os.environ`` for crawler configuration.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_USER_AGENT = (
    "policy-crawler/0.1 (+https://github.com/policy-crawler/policy-crawler; research crawler)"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRAWLER_", extra="ignore")

    # Storage: the embedded default is a SQLite file; postgresql://... selects PostgreSQL.
    database_url: str = Field(
        "sqlite:///data/crawler.sqlite3",
        description="SQLAlchemy URL of the document store (sqlite:///... or postgresql://...).",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker and shared crawl state.")

    # Fetching
    user_agent: str = Field(DEFAULT_USER_AGENT, description="User-Agent sent with every request.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(20.0, gt=0, description="Seconds to wait for each chunk of a body.")
    page_deadline: float = Field(60.0, gt=0, description="Seconds one page may take in total.")
    max_body_bytes: int = Field(5_000_000, gt=0, description="Cap on a page body, after decompression.")
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed per page.")
    max_url_length: int = Field(2048, gt=0, description="Longer URLs are refused.")
    max_attachment_bytes: int = Field(
        20_000_000, gt=0, description="Cap on an attachment file (PDF, DOCX...), after decompression."
    )
    allow_private_networks: bool = Field(
        False, description="Allow fetching loopback/private/link-local addresses (local sites, tests)."
    )

    # Crawl shape
    concurrency: int = Field(16, gt=0, description="Requests in flight in the embedded crawl.")
    per_host_concurrency: int = Field(2, gt=0, description="Requests in flight per host.")
    per_host_delay: float = Field(1.0, ge=0, description="Seconds between requests to one host.")
    extract_workers: int = Field(0, ge=0, description="Extraction processes; 0 = one per core.")
    extract_timeout: float = Field(30.0, gt=0, description="Seconds extraction may take for one page.")

    # Raw archive (crawler/archive.py): WARC files of every fetched page and attachment
    archive_enabled: bool = Field(True, description="Write the raw archive (embedded mode).")
    archive_dir: str = Field("data/warc", description="Directory of the raw archive's WARC files.")
    archive_max_file_bytes: int = Field(
        1_000_000_000, gt=0, description="A WARC file is closed and a new one begun past this size."
    )

    # Duplicates (see crawler/dedup.py and `python -m crawler.neardup_eval`)
    near_dup_threshold: float = Field(
        0.52,
        gt=0,
        le=1,
        description=(
            "Exact Jaccard similarity of character 5-gram sets at or above which a later text is "
            "recorded as a copy of an earlier story (1.0: exact duplicates only)."
        ),
    )
    keep_duplicate_text: bool = Field(
        False, description="Keep the full text of copies (later reposts of a stored story)."
    )

    # Distributed mode (Celery workers)
    redis_key_prefix: str = Field("crawler:", description="Prefix of the crawl-state keys in Redis.")
    visibility_timeout: float = Field(
        3600.0, gt=0, description="Redis broker visibility timeout; every countdown stays well below it."
    )
    task_time_limit: float = Field(300.0, gt=0, description="Hard time limit of one task (seconds).")
    task_soft_time_limit: float = Field(240.0, gt=0, description="Soft time limit of one task (seconds).")
    worker_max_tasks_per_child: int = Field(
        20_000, gt=0, description="Worker processes are replaced after this many tasks."
    )
    worker_max_memory_per_child_kb: int = Field(
        512_000, gt=0, description="Worker processes above this resident size (KiB) are replaced."
    )
    task_max_retries: int = Field(4, ge=0, description="Retries of a transient fetch failure.")
    retry_base_delay: float = Field(
        2.0, gt=0, description="First retry backoff (doubles each try, full jitter)."
    )
    retry_max_delay: float = Field(600.0, gt=0, description="Longest retry backoff (seconds).")
    throttle_max_sleep: float = Field(
        0.1, ge=0, description="A task sleeps for its host at most this long; longer waits are re-queued."
    )
    max_deliveries: int = Field(
        3, gt=0, description="Deliveries of a page that never finish before it is given up."
    )

    # Flower
    flower_user: str = Field("admin", description="Flower basic-auth user.")
    flower_password: str = Field("change-me", description="Flower basic-auth password.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_for_database(database_url: str | None = None) -> Settings:
    """The settings, with ``database_url`` (a command's ``--db``) overriding the environment's."""
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings
