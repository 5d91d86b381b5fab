"""One way to write a file so that a crash, a kill or a full disk never leaves a truncated one.

`atomic_write(path)` yields a binary file object on `.<name>.<random>.tmp` in the same folder (same filesystem,
so the rename is atomic); on success it flushes, fsyncs, gives the file the permissions of any other new file
(`0o666 & ~umask`, not mkstemp's 0600), `os.replace`s it over `path` and fsyncs the folder. On any error the
temporary file is removed and `path` keeps its old content. Every writer of run files uses it: checkpoints
(`atomic_torch_save`), `config_resolved.yaml`, `run.json`, and the caches (the image cache, the plan cache, the
compiled kernels through `atomic_output`, whose temporary path a compiler writes itself).
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@functools.cache
def new_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file: `0o666` without the process's umask bits."""
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[tuple[int, Path]]:
    """`(fd, tmp)`: a new temporary file beside `path`, open; renamed over `path` when the block ends without an
    error (after the caller wrote and closed it), else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        yield fd, Path(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that creates the file itself (a compiler's `-o`, ...): when the
    block ends without an error it becomes `path` atomically (the rules of the module docstring); on an error it is
    removed and `path` is untouched."""
    with _replacing(Path(path)) as (fd, tmp):
        os.close(fd)
        yield tmp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Write `path` atomically: `with atomic_write(p) as f: f.write(b"...")` (see the module docstring)."""
    with _replacing(Path(path)) as (fd, _), os.fdopen(fd, "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`Path(path).write_text(text)`, atomically (UTF-8)."""
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save(obj, path)` so that `path` is either the old file or the complete new one, never a partial write."""
    import torch

    with atomic_write(path) as f:
        torch.save(obj, f)


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
