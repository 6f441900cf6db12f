# policy-crawler: one image for the Celery worker, beat and Flower (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first (their layer is reused while only the code changes). Every dependency
# ships manylinux wheels for CPython 3.11, so no compiler is needed.
WORKDIR /src
COPY pyproject.toml README.md settings.py ./
COPY crawler ./crawler
COPY storage ./storage
COPY seeds ./seeds
COPY workers ./workers
RUN pip install . && rm -rf /src

# Run from an empty, writable directory as an unprivileged user: the code comes from the
# installed package, and beat keeps its schedule file under /tmp.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin crawler
USER crawler
WORKDIR /home/crawler

CMD ["celery", "-A", "workers.app", "worker", "-l", "info"]
