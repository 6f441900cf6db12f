"""One settings object, read from the environment (prefix ``CRAWLER_``).

Every component (the embedded crawl, the Celery workers, the CLI) reads its configuration from
:func:`get_settings`; nothing else reads ``os.environ`` for crawler configuration, and the
values each stage runs with (fetch limits, retry policy, politeness, crawl options) are built
here (:meth:`Settings.fetch_limits`, :meth:`Settings.retry_policy`, :meth:`Settings.politeness`,
:meth:`Settings.crawl_options`), so no default is written twice. A bad value raises
:class:`SettingsError`, whose message is one line naming the variable and the values it accepts
(``CRAWLER_CONCURRENCY='0': must be an integer greater than 0``).

The distributed mode's time limits hang together: every delayed message must come back before
the broker's visibility timeout hands it to a second worker, and a page must finish within its
task's time limit. So the visibility timeout is the one value to change: the task time limits,
the retry cap, the page deadline and the extraction bound follow from it unless set themselves
(:func:`derive_limits`), and values set by hand that contradict it get one error naming each
of them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Self

import annotated_types
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:
    from crawler.archive import ArchiveWriter
    from crawler.crawl import CrawlOptions
    from crawler.fetch import FetchLimits
    from crawler.visit import Politeness, RetryPolicy

DEFAULT_USER_AGENT = (
    "policy-crawler/0.1 (+https://github.com/policy-crawler/policy-crawler; research crawler)"
)


#: What ``CRAWLER_DATABASE_URL`` and ``--db`` accept.
DATABASE_URL_HELP = "sqlite:///PATH, sqlite:///:memory: or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
_DATABASE_URL = re.compile(r"^(sqlite|postgres(ql)?)(\+\w+)?://", re.IGNORECASE)
_REDIS_URL = re.compile(r"^(redis|rediss|unix)://", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Flower passwords that leave it open in all but name.
WEAK_FLOWER_PASSWORDS = frozenset({"", "change-me"})


class SettingsError(ValueError):
    """A ``CRAWLER_*`` value is invalid; the message is one line naming it and what it accepts."""


def check_database_url(value: str) -> str:
    """ValueError unless ``value`` looks like a URL the store opens (see :data:`DATABASE_URL_HELP`)."""
    if not _DATABASE_URL.match(value.strip()):
        raise ValueError(f"must be {DATABASE_URL_HELP}")
    scheme, _, rest = value.strip().partition("://")
    if scheme.lower().startswith("sqlite") and rest and not rest.startswith("/"):
        raise ValueError(f"a SQLite URL has three slashes: {DATABASE_URL_HELP}")
    return value.strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRAWLER_", extra="ignore", allow_inf_nan=False)

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
    max_body_bytes: int = Field(
        5_000_000, gt=0, le=1_000_000_000, description="Cap on a page body, after decompression."
    )
    max_redirects: int = Field(5, ge=0, le=30, description="Redirect hops followed per page.")
    max_url_length: int = Field(2048, ge=64, le=65536, description="Longer URLs are refused.")
    max_attachment_bytes: int = Field(
        20_000_000,
        gt=0,
        le=1_000_000_000,
        description="Cap on an attachment file (PDF, DOCX...), after decompression.",
    )
    allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Address ranges (CIDR, comma-separated) the crawler may connect to besides public "
            "addresses, e.g. 127.0.0.0/8 for a site on this machine."
        ),
    )
    allow_private_networks: bool = Field(
        False, description="Deprecated: also allow loopback and the private ranges (use allowed_networks)."
    )

    # Crawl shape
    concurrency: int = Field(16, gt=0, le=1024, description="Requests in flight in the embedded crawl.")
    per_host_concurrency: int = Field(2, gt=0, le=64, description="Requests in flight per host.")
    per_host_delay: float = Field(1.0, ge=0, le=3600, description="Seconds between requests to one host.")
    extract_workers: int = Field(0, ge=0, le=256, description="Extraction processes; 0 = one per core.")
    extract_timeout: float = Field(
        30.0, gt=0, description="Seconds extraction may take for one page (default: derived, at most 30)."
    )
    max_links_per_page: int = Field(
        5_000, gt=0, description="Links kept per page (in page order); the rest are counted as dropped."
    )
    frontier_in_memory: int = Field(
        4096,
        ge=2,
        description="Visits on the embedded crawl's frontier kept in memory; the rest wait in a file.",
    )
    extraction_plans: bool = Field(
        True,
        description=(
            "Learn per-template extraction plans and let them skip trafilatura on later pages "
            "of the template (checked against trafilatura; see crawler/plans.py)."
        ),
    )
    plan_reload_seconds: float = Field(
        30.0, gt=0, description="A worker reads a site's stored plans again after this many seconds."
    )

    # Raw archive (crawler/archive.py): WARC files of every fetched page and attachment
    archive_enabled: bool = Field(True, description="Keep the raw archive (see archive_dir).")
    archive_dir: str | None = Field(
        None,
        description=(
            "Directory of the raw archive's WARC files; by default 'warc' beside a SQLite store "
            "(./data/warc), and none for a PostgreSQL store (workers keep one only when told where)."
        ),
    )
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

    # Flower
    flower_user: str = Field("admin", description="Flower basic-auth user.")
    flower_password: str = Field(
        "", description="Flower basic-auth password; Flower refuses to start when it is empty or 'change-me'."
    )
    flower_public_metrics: bool = Field(
        False, description="Serve Flower's /metrics without authentication (for a Prometheus scraper)."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not _REDIS_URL.match(value.strip()):
            raise ValueError("must be redis://HOST[:PORT]/DB, rediss://... or unix:///PATH")
        return value.strip()

    @field_validator("user_agent", "flower_user", "redis_key_prefix")
    @classmethod
    def _check_text(cls, value: str) -> str:
        if not value.strip() or _CONTROL.search(value):
            raise ValueError("must be non-empty text without control characters")
        return value

    @field_validator("flower_password")
    @classmethod
    def _check_password(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        """``"127.0.0.0/8, 10.0.0.0/8"`` (the environment's form) or a list; each must parse."""
        if isinstance(value, str):
            value = [part for part in value.replace(",", " ").split() if part]
        if isinstance(value, list | tuple):
            from crawler.netpolicy import parse_network

            return [str(parse_network(str(item))) for item in value]
        return value

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
        from crawler.netpolicy import NetworkPolicy  # crawler/ never imports settings: built here

        return FetchLimits(
            user_agent=self.user_agent,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            page_deadline=self.page_deadline,
            max_body_bytes=self.max_body_bytes,
            max_redirects=self.max_redirects,
            max_url_length=self.max_url_length,
            max_attachment_bytes=self.max_attachment_bytes,
            network=NetworkPolicy.from_cidrs(self.allowed_networks, private=self.allow_private_networks),
        )

    def archive_directory(self) -> str | None:
        """Where the raw archive goes: ``archive_dir``, else ``warc`` beside a SQLite store (the
        embedded default keeps everything under ./data), else nowhere (a PostgreSQL store: each
        worker would write to its own disk, so workers keep an archive only when told where)."""
        if self.archive_dir:
            return self.archive_dir
        scheme, _, rest = self.database_url.partition("://")
        if scheme.lower().startswith("sqlite"):
            path = rest[1:].split("?", 1)[0]  # sqlite:///rel/path, sqlite:////abs/path
            if path and path != ":memory:":
                return os.path.join(os.path.dirname(path) or ".", "warc")
        return None

    def archive_writer(self) -> ArchiveWriter | None:
        """The raw archive's writer (``CRAWLER_ARCHIVE_*``), or None when it is switched off."""
        from crawler.archive import ArchiveWriter

        directory = self.archive_directory()
        if not self.archive_enabled or directory is None:
            return None
        return ArchiveWriter(directory, max_file_bytes=self.archive_max_file_bytes)

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
            extract_workers=self.extract_workers if extract_workers is None else extract_workers,
            extract_timeout=self.extract_timeout,
            near_dup_threshold=self.near_dup_threshold,
            keep_duplicate_text=self.keep_duplicate_text,
            limits=self.fetch_limits(),
            retry=self.retry_policy(),
            max_links=self.max_links_per_page,
            frontier_in_memory=self.frontier_in_memory,
            archive=self.archive_writer(),
            extraction_plans=self.extraction_plans,
            max_pages=max_pages,
            max_depth=max_depth,
            revisit_all=revisit_all,
            retry_failed=retry_failed,
        )


def env_name(field: str) -> str:
    return f"CRAWLER_{field.upper()}"


def allowed_values(field: str) -> str:
    """What a setting accepts, in words, from its type and bounds ("an integer greater than 0")."""
    info = Settings.model_fields[field]
    annotation = info.annotation
    if annotation is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if annotation is str:
        return "text"
    if annotation not in (int, float):
        return "a comma-separated list of CIDR networks such as 127.0.0.0/8, ::1/128"
    kind = "an integer" if annotation is int else "a number"
    low: tuple[float, bool] | None = None  # (bound, inclusive)
    high: float | None = None
    for item in info.metadata:
        if isinstance(item, annotated_types.Gt):
            bound = float(item.gt)  # type: ignore[arg-type]
            low = (bound + 1, True) if annotation is int else (bound, False)
        elif isinstance(item, annotated_types.Ge):
            low = (float(item.ge), True)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
    if low is not None and high is not None and low[1]:
        return f"{kind} from {_number(low[0])} to {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"of {_number(low[0])} or more" if low[1] else f"greater than {_number(low[0])}")
    if high is not None:
        parts.append(f"at most {_number(high)}")
    return " ".join([kind, " and ".join(parts)]).strip()


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def _shown(field: str, value: Any) -> str:
    """The offending value as the user typed it, secrets hidden, one short line."""
    text = str(value)
    if field == "flower_password":
        return "'***'"
    text = re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1:***@", text)
    text = _CONTROL.sub("?", text)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def describe_validation_error(exc: ValidationError) -> str:
    """A settings ValidationError as one line: each bad variable, its value and what it accepts."""
    problems: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if field not in Settings.model_fields:
            problems.append(" ".join(str(error["msg"]).removeprefix("Value error, ").split()))
            continue
        if error["type"] == "value_error":  # our own validators say what is wrong themselves
            why = str(error["msg"]).removeprefix("Value error, ")
        else:
            why = f"must be {allowed_values(field)}"
        problems.append(f"{env_name(field)}={_shown(field, error.get('input', ''))}: {' '.join(why.split())}")
    return "; ".join(dict.fromkeys(problems))


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
    """The settings from the environment; :class:`SettingsError` (one line) if a value is bad."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def settings_for_database(database_url: str | None = None) -> Settings:
    """The settings, with ``database_url`` (a command's ``--db``) overriding the environment's."""
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings
