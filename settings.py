"""One settings object, read from the environment (prefix ``CRAWLER_``).

Every component (the embedded crawl, the Celery workers, the CLI) reads its configuration from
:func:`get_settings`; nothing else reads ``os.environ`` for crawler configuration, and the
values each stage runs with (fetch limits, retry policy, politeness) are built here
(:meth:`Settings.fetch_limits`, :meth:`Settings.retry_policy`, :meth:`Settings.politeness`), so
no default is written twice.

The distributed mode's time limits hang together: every delayed message must come back before
the broker's visibility timeout hands it to a second worker, and a page must finish within its
task's time limit. So the visibility timeout is the one value to change: the task time limits,
the retry cap, the page deadline and the extraction bound follow from it unless set themselves
(:func:`derive_limits`), and values set by hand that contradict it get one error naming each
of them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from crawler.crawl import CrawlOptions
    from crawler.fetch import FetchLimits
    from crawler.visit import Politeness, RetryPolicy

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
    page_deadline: float = Field(
        60.0, gt=0, description="Seconds one page may take in total (default: derived, at most 60)."
    )
    max_body_bytes: int = Field(5_000_000, gt=0, description="Cap on a page body, after decompression.")
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed per page.")
    max_url_length: int = Field(2048, gt=0, description="Longer URLs are refused.")
    allow_private_networks: bool = Field(
        False, description="Allow fetching loopback/private/link-local addresses (local sites, tests)."
    )

    # Crawl shape
    concurrency: int = Field(16, gt=0, description="Requests in flight in the embedded crawl.")
    per_host_concurrency: int = Field(2, gt=0, description="Requests in flight per host.")
    per_host_delay: float = Field(1.0, ge=0, description="Seconds between requests to one host.")
    extract_workers: int = Field(0, ge=0, description="Extraction processes; 0 = one per core.")
    extract_timeout: float = Field(
        30.0, gt=0, description="Seconds extraction may take for one page (default: derived, at most 30)."
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
    task_time_limit: float = Field(
        300.0, gt=0, description="Hard time limit of one task (default: derived, at most 300 s)."
    )
    task_soft_time_limit: float = Field(
        240.0, gt=0, description="Soft time limit of one task (default: derived, 80 % of the hard one)."
    )
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
    retry_max_delay: float = Field(
        600.0, gt=0, description="Longest retry backoff (default: derived, at most 600 s)."
    )
    throttle_max_sleep: float = Field(
        0.1, ge=0, description="A task sleeps for its host at most this long; longer waits are re-queued."
    )
    max_deliveries: int = Field(
        3, gt=0, description="Deliveries of a page that never finish before it is given up."
    )
    worker_soft_shutdown_timeout: float = Field(
        5.0,
        ge=0,
        description=(
            "Seconds a worker stopped with SIGTERM lets its running pages finish before it hands "
            "them back to the broker (keep it below the grace period of docker stop or Kubernetes)."
        ),
    )

    @model_validator(mode="after")
    def _derive_limits(self) -> Self:
        derived = derive_limits(self.visibility_timeout)
        for name, value in derived.items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, value)
        problems = limit_problems(self)
        if problems:
            raise ValueError(
                "the distributed mode's time limits contradict each other: "
                + "; ".join(problems)
                + f" (set only CRAWLER_VISIBILITY_TIMEOUT and the others follow: {_describe(derived)})"
            )
        return self

    def fetch_limits(self) -> FetchLimits:
        from crawler.fetch import FetchLimits

        return FetchLimits(
            user_agent=self.user_agent,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            page_deadline=self.page_deadline,
            max_body_bytes=self.max_body_bytes,
            max_redirects=self.max_redirects,
            max_url_length=self.max_url_length,
        )

    def retry_policy(self, *, ceiling: float | None = None) -> RetryPolicy:
        """Backoff of transient failures; ``ceiling`` bounds every delay (the workers' longest
        countdown, :func:`max_countdown`; by default the longest backoff itself)."""
        from crawler.visit import RetryPolicy

        return RetryPolicy(
            max_retries=self.task_max_retries,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
            ceiling=self.retry_max_delay if ceiling is None else max(ceiling, self.retry_max_delay),
        )

    def politeness(self, *, delay: float | None = None, concurrency: int | None = None) -> Politeness:
        """Per-host delay and concurrency; ``delay``/``concurrency`` (a command line's flags)
        win over a source's own values."""
        from crawler.visit import Politeness

        return Politeness(
            delay=self.per_host_delay,
            concurrency=self.per_host_concurrency,
            delay_override=delay,
            concurrency_override=concurrency,
        )

    def crawl_options(
        self,
        *,
        max_pages: int | None = None,
        max_depth: int | None = None,
        concurrency: int | None = None,
        delay: float | None = None,
        allow_private_networks: bool | None = None,
        extract_workers: int | None = None,
        revisit_all: bool = False,
        retry_failed: bool = False,
    ) -> CrawlOptions:
        """How an embedded crawl runs: these settings, with a command line's flags.
        ``concurrency``/``delay`` (``--concurrency``/``--delay``) win over the settings and
        over each source's own per-host values."""
        from crawler.crawl import CrawlOptions

        return CrawlOptions(
            concurrency=self.concurrency if concurrency is None else concurrency,
            politeness=self.politeness(delay=delay, concurrency=concurrency),
            allow_private_networks=(
                self.allow_private_networks if allow_private_networks is None else allow_private_networks
            ),
            extract_workers=self.extract_workers if extract_workers is None else extract_workers,
            extract_timeout=self.extract_timeout,
            near_dup_threshold=self.near_dup_threshold,
            keep_duplicate_text=self.keep_duplicate_text,
            limits=self.fetch_limits(),
            retry=self.retry_policy(),
            max_pages=max_pages,
            max_depth=max_depth,
            revisit_all=revisit_all,
            retry_failed=retry_failed,
        )

    # Flower
    flower_user: str = Field("admin", description="Flower basic-auth user.")
    flower_password: str = Field("change-me", description="Flower basic-auth password.")


#: A delayed message is given back this long at least (shorter ones are clamped to it).
MIN_COUNTDOWN = 2.0


def max_countdown(visibility_timeout: float, task_time_limit: float) -> float:
    """The longest countdown a task may be given.

    A message with a countdown is held unacknowledged by a worker until it is due and then
    until it has run; if that exceeds the visibility timeout Redis hands it to a second worker.
    So: half the visibility timeout (room for the wait inside a busy worker), less the longest a
    task may run.
    """
    return visibility_timeout / 2 - task_time_limit


def derive_limits(visibility_timeout: float) -> dict[str, float]:
    """The time limits that follow from the visibility timeout (3600 s gives the documented
    defaults: task limit 300 s, soft 240 s, retry cap 600 s, page deadline 60 s, extraction
    30 s)."""
    hard = min(300.0, visibility_timeout / 3)
    soft = 0.8 * hard
    return {
        "task_time_limit": hard,
        "task_soft_time_limit": soft,
        "retry_max_delay": min(600.0, max_countdown(visibility_timeout, hard)),
        "page_deadline": min(60.0, soft / 2),
        "extract_timeout": min(30.0, soft / 4),
    }


def limit_problems(settings: Settings) -> list[str]:
    """Every relation between the time limits that ``settings`` break, each naming its variables."""
    problems: list[str] = []
    vt, hard, soft = settings.visibility_timeout, settings.task_time_limit, settings.task_soft_time_limit
    if soft >= hard:
        problems.append(
            f"CRAWLER_TASK_SOFT_TIME_LIMIT ({soft:g}) must be below CRAWLER_TASK_TIME_LIMIT ({hard:g})"
        )
    bound = max_countdown(vt, hard)
    if bound < MIN_COUNTDOWN:
        problems.append(
            f"CRAWLER_TASK_TIME_LIMIT ({hard:g}) must be at most {vt / 2 - MIN_COUNTDOWN:g} for "
            f"CRAWLER_VISIBILITY_TIMEOUT ({vt:g}): a delayed task must come back before the broker "
            "hands it to another worker"
        )
    elif settings.retry_max_delay > bound:
        problems.append(
            f"CRAWLER_RETRY_MAX_DELAY ({settings.retry_max_delay:g}) must be at most {bound:g}, half "
            "CRAWLER_VISIBILITY_TIMEOUT less CRAWLER_TASK_TIME_LIMIT"
        )
    if settings.page_deadline + settings.extract_timeout > soft:
        problems.append(
            f"CRAWLER_PAGE_DEADLINE ({settings.page_deadline:g}) plus CRAWLER_EXTRACT_TIMEOUT "
            f"({settings.extract_timeout:g}) must fit in CRAWLER_TASK_SOFT_TIME_LIMIT ({soft:g})"
        )
    return problems


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"CRAWLER_{name.upper()}={value:g}" for name, value in values.items())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_for_database(database_url: str | None = None) -> Settings:
    """The settings, with ``database_url`` (a command's ``--db``) overriding the environment's."""
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings
