"""`data.download=true` for flower_photos, against an HTTP server on 127.0.0.1 serving a tiny archive in the same
layout (flower_photos/<class>/*.jpg and LICENSE.txt): download, resume, SHA-256, atomic extraction, one-line errors."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cnnexp.data import download as dl
from cnnexp.data.download import Archive, fetch_archive, fetch_data_dir
from cnnexp.errors import ConfigError, DataError

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def archive_bytes(data_root) -> bytes:
    """A .tgz of flower_photos/<5 classes>/img<i>.jpg (the session's 8 small JPEGs each) and LICENSE.txt."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in CLASSES:
            tar.add(data_root / "flower_photos" / name, arcname=f"flower_photos/{name}")
        license_text = b"All images in this archive are licensed under CC-BY 2.0.\n"
        info = tarfile.TarInfo("flower_photos/LICENSE.txt")
        info.size = len(license_text)
        tar.addfile(info, io.BytesIO(license_text))
    return buffer.getvalue()


class Server:
    """Serves `body` at /flower_photos.tgz with HTTP Range support; `cut_at` bytes: drop the connection there."""

    def __init__(self, body: bytes) -> None:
        self.body, self.cut_at, self.ranges, self.honour_range = body, None, [], True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                if self.path != "/flower_photos.tgz":
                    self.send_error(404)
                    return
                start, header = 0, self.headers.get("Range")
                server.ranges.append(header)
                if header and server.honour_range:
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(server.body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(server.body) - start))
                self.end_headers()
                end = server.cut_at if server.cut_at is not None and start < server.cut_at else len(server.body)
                self.wfile.write(server.body[start:end])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/flower_photos.tgz"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def archive(self, sha256: str | None = None) -> Archive:
        return Archive(self.url, sha256 or hashlib.sha256(self.body).hexdigest(), "flower_photos")


@pytest.fixture
def server(archive_bytes):
    served = Server(archive_bytes)
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def leftovers(root: Path) -> list[str]:
    """What a fetch left next to the data set (the lock file is expected)."""
    return sorted(p.name for p in root.iterdir() if p.name != ".flower_photos.lock")


def test_downloads_verifies_and_extracts_the_served_archive(server, tmp_path):
    folder = fetch_archive(server.archive(), tmp_path / "data")
    assert folder == tmp_path / "data/flower_photos"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == CLASSES
    assert len(list(folder.rglob("*.jpg"))) == 40
    assert leftovers(tmp_path / "data") == ["flower_photos"]  # no archive, no part, no extraction folder
    fetch_archive(Archive("http://127.0.0.1:9/nothing.tgz", "0" * 64, "flower_photos"), tmp_path / "data")
    assert server.ranges == [None]  # the second call found the folder and touched no network


def test_a_cut_download_is_one_error_and_a_rerun_resumes(server, tmp_path):
    server.cut_at = len(server.body) // 2
    with pytest.raises(DataError, match=r"stopped after [\d,]+ of [\d,]+ bytes.*rerun to resume"):
        fetch_archive(server.archive(), tmp_path)
    assert (tmp_path / "flower_photos.tgz.part").stat().st_size == server.cut_at
    assert not (tmp_path / "flower_photos").exists()
    server.cut_at = None
    fetch_archive(server.archive(), tmp_path)
    assert server.ranges == [None, f"bytes={len(server.body) // 2}-"]
    assert len(list((tmp_path / "flower_photos").rglob("*.jpg"))) == 40


def test_a_server_without_ranges_restarts_the_download(server, tmp_path):
    (tmp_path / "flower_photos.tgz.part").write_bytes(b"stale bytes of another try")
    server.honour_range = False
    fetch_archive(server.archive(), tmp_path)
    assert server.ranges == ["bytes=26-"] and (tmp_path / "flower_photos/roses").is_dir()


def test_a_checksum_mismatch_is_an_error_and_deletes_the_download(server, tmp_path):
    with pytest.raises(DataError, match="has SHA-256 .* expected 0{64}.*rerun"):
        fetch_archive(server.archive("0" * 64), tmp_path)
    assert leftovers(tmp_path) == []


def test_offline_is_one_error_with_the_manual_command(tmp_path):
    closed = Archive("http://127.0.0.1:9/flower_photos.tgz", "0" * 64, "flower_photos")  # port 9: nobody listens
    with pytest.raises(DataError, match="cannot download .*offline.*Fix: .*curl -L"):
        fetch_archive(closed, tmp_path)
    assert leftovers(tmp_path) == []


def test_an_http_error_is_named(server, tmp_path):
    missing = Archive(server.url.replace("flower_photos", "nope"), "0" * 64, "flower_photos")
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_archive(missing, tmp_path)


def test_a_full_disk_is_one_error_and_keeps_the_part_to_resume(server, tmp_path, monkeypatch):
    def full(file, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl, "_write", full)
    with pytest.raises(DataError, match="no space left on the disk .*Fix: free some space"):
        fetch_archive(server.archive(), tmp_path)
    assert not (tmp_path / "flower_photos").exists() and (tmp_path / "flower_photos.tgz.part").exists()


def test_a_killed_extraction_leaves_nothing_and_the_rerun_extracts(server, tmp_path, monkeypatch):
    def killed(self, *args, **kwargs):
        (Path(args[0]) / "flower_photos").mkdir(parents=True)  # half-written
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", killed)
    with pytest.raises(KeyboardInterrupt):
        fetch_archive(server.archive(), tmp_path)
    assert leftovers(tmp_path) == ["flower_photos.tgz"]  # the verified archive stays; no half folder
    (tmp_path / ".flower_photos.extracting-999999999").mkdir()  # as a killed process (pid gone) leaves it
    monkeypatch.undo()
    fetch_archive(server.archive(), tmp_path)
    assert leftovers(tmp_path) == ["flower_photos"] and server.ranges == [None]  # extracted, not downloaded again


def test_a_corrupt_archive_is_one_error(tmp_path):
    body = b"not a tar.gz at all"
    (tmp_path / "flower_photos.tgz").write_bytes(body)  # as if verified: the sha is that of the bad file
    with pytest.raises(DataError, match="not a complete .tar.gz archive.*rerun"):
        fetch_archive(Archive("http://127.0.0.1:9/flower_photos.tgz", hashlib.sha256(body).hexdigest(),
                              "flower_photos"), tmp_path)
    assert leftovers(tmp_path) == []


def test_the_data_folder_must_be_named_as_the_archive_folder(server, tmp_path):
    with pytest.raises(ConfigError, match="not named flower_photos"):
        fetch_data_dir(tmp_path / "my_images", {"url": server.url, "sha256": "0" * 64, "folder": "flower_photos"})
    with pytest.raises(ConfigError, match="lacks sha256"):
        fetch_data_dir(tmp_path / "flower_photos", {"url": server.url, "folder": "flower_photos"})


@pytest.mark.slow
def test_seed_flowers_with_download_true_fetches_and_trains_one_epoch(server, tmp_path, make_cfg):
    from cnnexp.train import train

    data_dir = tmp_path / "data"
    cfg = make_cfg("+experiment=seed_flowers", "data.download=true", f"data.archive.url={server.url}",
                   f"data.archive.sha256={server.archive().sha256}", "data.image_size=[16,16]",
                   "trainer.max_epochs=1", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
                   "trainer.enable_progress_bar=false", "logger=csv", data_dir=data_dir)
    metrics = train(cfg)
    assert {"test/acc", "val/acc"} <= set(metrics) and (data_dir / "flower_photos/tulips").is_dir()
    assert server.ranges == [None]


@pytest.mark.slow
def test_offline_from_the_command_line_is_one_error_line(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "cnnexp", "+experiment=seed_flowers", "data.download=true",
                             "data.archive.url=http://127.0.0.1:9/flower_photos.tgz", f"paths.data_dir={tmp_path}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot download http://127.0.0.1:9/flower_photos.tgz" in errors[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "flower_photos").exists()
