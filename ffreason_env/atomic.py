"""Atomic file writes: a file a run writes is either its old self or complete, never half written.

The content goes to a unique temporary file in the target's own directory
(so that ``os.replace`` is a rename on one file system, and two writers never
share a temporary name), which replaces the target only once closed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator

__all__ = ["atomic_write", "atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A fresh temporary path beside ``path`` for a writer that takes a path (pyarrow, ``save_pretrained``); it
    replaces ``path`` when the block ends without an error and is removed otherwise. A directory works too: the
    block may replace the temporary file by a directory of the same name."""
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open(path, mode)`` whose content appears at ``path`` only once the block ends without an error."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
