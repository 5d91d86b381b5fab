"""Fetch a data set archive (the lecture's flower_photos) once: resumable download, SHA-256 check, atomic extraction.

`fetch_archive(archive, root)` makes `<root>/<archive.folder>` exist and returns it:

1. the folder exists: nothing to do (it only ever appears complete, by one rename);
2. download `<root>/<file>.part`, resuming a partial one with an HTTP Range request (a server that ignores
   the range sends the whole file again: the part restarts from zero);
3. check the SHA-256 of the whole file; a mismatch deletes the part (a rerun restarts) and is an error;
4. extract into a private `<root>/.<folder>.extracting-<pid>` folder and rename the archive's top folder to
   `<root>/<folder>`; a killed extraction leaves only that private folder, removed by the next run.
   The archive is deleted after a successful extraction.

Every failure is one DataError line with a fix: offline (or the server refused), an HTTP error, a download
that stopped early (the part is kept: rerun to resume), a checksum mismatch, a full disk, a corrupt archive.
A lock file keeps two processes (DDP ranks, two runs) from fetching the same archive at once.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cnnexp.errors import ConfigError, DataError

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read per network read
TIMEOUT_S = 30.0  # seconds without data before the download counts as stalled


@dataclass(frozen=True)
class Archive:
    """A `.tar.gz` archive whose top-level folder is the data set.

    Args:
        url: where to download it (http, https or file).
        sha256: the SHA-256 of the whole archive (hex).
        folder: the top-level folder in the archive, e.g. "flower_photos".
    """

    url: str
    sha256: str
    folder: str

    @property
    def file_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1] or f"{self.folder}.tgz"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(archive: Archive, root: Path) -> str:
    return f"curl -L {archive.url} | tar xz -C {root}"


def _disk_full(error: OSError, root: Path, archive: Archive) -> DataError:
    return DataError(f"no space left on the disk of {root} while fetching {archive.folder} ({error.strerror}). "
                     f"Fix: free some space (the archive and its extracted copy both need room), or set "
                     f"paths.data_dir to a folder on a larger disk; a rerun resumes the download.")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(file, data: bytes) -> None:
    """Append one chunk (a separate function so that a test can make the disk full)."""
    file.write(data)


def download(archive: Archive, part: Path, root: Path) -> None:
    """Download `archive.url` into `part`, resuming from `part`'s size when the server supports ranges."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(archive.url, headers={"User-Agent": "cnnexp"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part already holds the whole file
            return
        raise DataError(f"cannot download {archive.url}: HTTP {error.code} {error.reason}. Fix: check the "
                        f"address (data.archive.url), or download it by hand: {_by_hand(archive, root)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"cannot download {archive.url} ({reason}): offline, or the server cannot be reached. "
                        f"Fix: connect to the internet and rerun, or download it by hand: "
                        f"{_by_hand(archive, root)}") from None
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        if have and not resumed:
            log.info("The server does not resume downloads: starting %s again.", archive.file_name)
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        log.info("Downloading %s%s into %s", archive.url,
                 f" (resuming at {have / 2**20:.1f} MiB)" if resumed else "", root)
        try:
            with open(part, "ab" if resumed else "wb") as file:
                while True:
                    try:
                        data = response.read(CHUNK)
                    except (OSError, ValueError, http.client.HTTPException) as error:  # reset, timeout, cut
                        log.debug("read failed: %r", error)
                        break
                    if not data:
                        break
                    _write(file, data)
                    received += len(data)
                    if expected and received * 10 // expected > (received - len(data)) * 10 // expected:
                        start = have if resumed else 0  # progress of the whole file, in tenths
                        log.info("  %d%% of %.1f MiB", (start + received) * 100 // (start + expected),
                                 (start + expected) / 2**20)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(error, root, archive) from None
            raise
    if expected is not None and received < expected:
        total = (have if resumed else 0) + expected
        raise DataError(f"the download of {archive.url} stopped after {part.stat().st_size:,} of {total:,} bytes "
                        f"(connection lost). Fix: rerun to resume it (the partial file {part} is kept).")


def _remove_stale_extractions(root: Path, folder: str) -> None:
    """Remove extraction folders left by a killed run (their process is gone)."""
    for stale in root.glob(f".{folder}.extracting-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def extract(archive_path: Path, archive: Archive, root: Path) -> Path:
    """Extract `archive_path` and move its top folder to `<root>/<folder>` in one rename."""
    target = root / archive.folder
    work = root / f".{archive.folder}.extracting-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(work, filter="data")  # no absolute paths, no .., no device files
            else:  # Python < 3.10.12 / 3.11.4
                for member in tar.getmembers():
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                        raise tarfile.TarError(f"unsafe member {member.name}")
                tar.extractall(work)
        if not (work / archive.folder).is_dir():
            raise DataError(f"{archive_path} has no top-level folder {archive.folder}/. Fix: check "
                            "data.archive.folder, or data.archive.url points at the wrong archive.")
        os.replace(work / archive.folder, target)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(error, root, archive) from None
        raise
    except (tarfile.TarError, EOFError, zlib.error) as error:
        archive_path.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] or type(error).__name__
        raise DataError(f"{archive_path} is not a complete .tar.gz archive ({reason}). Fix: rerun to download it "
                        "again (the bad file was deleted).") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def fetch_archive(archive: Archive, root: str | os.PathLike) -> Path:
    """Make `<root>/<archive.folder>` exist (download, verify, extract) and return it; see the module docstring."""
    root = Path(root).expanduser().resolve()
    target = root / archive.folder
    if target.is_dir():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data folder {root} ({error.strerror}). Fix: set paths.data_dir to "
                        "a folder you can write to.") from None
    with _locked(root / f".{archive.folder}.lock"):
        if target.is_dir():  # another process fetched it while this one waited
            return target
        _remove_stale_extractions(root, archive.folder)
        archive_path = root / archive.file_name
        part = root / f"{archive.file_name}.part"
        if not archive_path.is_file():
            download(archive, part, root)
            actual = sha256_of(part)
            if actual != archive.sha256.lower():
                size = part.stat().st_size
                part.unlink()
                raise DataError(f"the download of {archive.url} ({size:,} bytes) has SHA-256 {actual}, expected "
                                f"{archive.sha256}: a changed or corrupted file (it was deleted). Fix: rerun to "
                                "download it again; if it fails again, check data.archive.url and data.archive.sha256.")
            os.replace(part, archive_path)
        log.info("Extracting %s into %s", archive_path.name, target)
        extract(archive_path, archive, root)
        archive_path.unlink(missing_ok=True)
    return target


def fetch_data_dir(data_dir: str | os.PathLike, archive: Archive | Mapping | None) -> Path:
    """`data.download=true` of an image folder: fetch `archive` so that `data_dir` (`<root>/<folder>`) exists."""
    if Path(data_dir).expanduser().is_dir():
        return Path(data_dir).expanduser().resolve()
    if archive is None:
        raise ConfigError("data.download=true needs data.archive (url, sha256, folder) to know what to fetch. "
                          "Fix: use the image_folder preset's flower_photos archive, or set data.archive.")
    if not isinstance(archive, Archive):
        missing = [key for key in ("url", "sha256", "folder") if not archive.get(key)]
        if missing:
            raise ConfigError(f"data.archive lacks {', '.join(missing)}. Fix: set data.archive.url, "
                              "data.archive.sha256 and data.archive.folder.")
        archive = Archive(str(archive["url"]), str(archive["sha256"]), str(archive["folder"]))
    data_dir = Path(data_dir).expanduser().resolve()
    if data_dir.name != archive.folder:
        raise ConfigError(f"data.download=true extracts {archive.folder}/ into a data folder, but data.data_dir="
                          f"{data_dir} is not named {archive.folder}. Fix: set data.data_dir=<folder>/"
                          f"{archive.folder} (the default is paths.data_dir/{archive.folder}), or download=false.")
    return fetch_archive(archive, data_dir.parent)
