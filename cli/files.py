"""Files the command line writes and reads: all or nothing, and bounded.

:func:`atomic_binary_file` (and :func:`atomic_text_file`) writes next to the target and renames
over it only when everything was written, so a failing ``export`` never leaves a partial file
nor replaces the previous one.
:func:`read_capped` reads at most a byte cap (``extract`` applies the crawl's body cap to saved
pages and to standard input), so a huge input is refused before it is held in memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from crawler.errors import BodyTooLarge

_CHUNK = 1 << 20


@contextlib.contextmanager
def atomic_text_file(target: str | Path) -> Iterator[IO[str]]:
    """A UTF-8 text stream whose content becomes ``target`` when the block ends without error
    (see :func:`atomic_binary_file`)."""
    with atomic_binary_file(target) as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8")
        try:
            yield stream
            stream.flush()
        finally:
            stream.detach()  # the binary file is the one to sync, rename or remove


@contextlib.contextmanager
def atomic_binary_file(target: str | Path) -> Iterator[BinaryIO]:
    """A binary stream whose content becomes ``target`` when the block ends without error.

    The temporary file is in the target's folder (so the rename is atomic), flushed and synced
    before it replaces the target; it keeps the target's permissions when the target exists,
    else gets the usual ones (0666 less the umask). On any error it is removed and the target is
    left as it was.
    """
    path = Path(target)
    folder = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_capped(stream: BinaryIO, cap: int, *, name: str) -> bytes:
    """Up to ``cap`` bytes of ``stream``; :class:`BodyTooLarge` as soon as there are more."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, cap - size + 1))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(f"{name} is larger than the {cap:,}-byte cap (CRAWLER_MAX_BODY_BYTES)")
        chunks.append(chunk)


def read_file_capped(path: Path, cap: int) -> bytes:
    """A saved page's bytes, refused without reading when its size is already over ``cap``."""
    with path.open("rb") as stream:
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode) and info.st_size > cap:
            raise BodyTooLarge(
                f"{info.st_size:,} bytes, larger than the {cap:,}-byte cap (CRAWLER_MAX_BODY_BYTES)"
            )
        return read_capped(stream, cap, name=str(path))
