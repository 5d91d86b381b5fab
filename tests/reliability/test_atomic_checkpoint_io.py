"""AtomicCheckpointIO in a real Trainer: Lightning's saves are atomic and its resume loads with weights_only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnexp.checkpoints import UnsafeCheckpointError, load_checkpoint
from cnnexp.lit.atomic_checkpoint_io import AtomicCheckpointIO

from .tiny import TinyModule, loaders, trainer


def test_fit_saves_and_resumes_through_atomic_io(tmp_path: Path) -> None:
    calls: dict[str, list] = {"save": [], "load": []}

    class Spy(AtomicCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):  # noqa: ANN001, ANN202
            calls["save"].append(path)
            return super().save_checkpoint(checkpoint, path, storage_options)

        def load_checkpoint(self, path, map_location=None, weights_only=None):  # noqa: ANN001, ANN202
            calls["load"].append(weights_only)
            return super().load_checkpoint(path, map_location, weights_only)

    io = Spy()

    train, val = loaders()
    trainer(tmp_path, plugins=[io], max_epochs=2).fit(TinyModule(), train, val)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and any(Path(p) == last for p in calls["save"])
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))

    resumed = trainer(tmp_path / "again", plugins=[io], max_epochs=3)
    resumed.fit(TinyModule(), train, val, ckpt_path=str(last), weights_only=False)  # asks for unsafe loading...
    assert calls["load"] == [False], "Lightning did not load through the CheckpointIO"
    assert resumed.current_epoch == 3 and resumed.global_step == 3 * 8


def test_resume_refuses_malicious_checkpoint(tmp_path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 0, "x": Evil()}, bad)
    train, val = loaders()
    with pytest.raises(UnsafeCheckpointError, match="evil.ckpt"):
        trainer(tmp_path, plugins=[AtomicCheckpointIO()]).fit(TinyModule(), train, val, ckpt_path=str(bad),
                                                               weights_only=False)
    assert not (tmp_path / "pwned").exists()


def test_failed_save_keeps_previous_last_ckpt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train, val = loaders()
    trainer(tmp_path, plugins=[AtomicCheckpointIO()], max_epochs=1).fit(TinyModule(), train, val)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    real_save, calls = torch.save, []

    def crash_on_last(obj, f, *a, **k):  # noqa: ANN001, ANN202 - epoch file, then last.ckpt: dies halfway in it
        calls.append(obj["global_step"])
        if len(calls) == 2:
            f.write(before[: len(before) // 2])
            raise KeyboardInterrupt
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", crash_on_last)
    t = trainer(tmp_path, plugins=[AtomicCheckpointIO()], max_epochs=2)
    with pytest.raises(SystemExit):  # Lightning turns the KeyboardInterrupt into a graceful exit
        t.fit(TinyModule(), train, val, ckpt_path=str(last))
    assert calls == [16, 16], "expected the epoch-1 file, then last.ckpt"
    assert last.read_bytes() == before
    assert load_checkpoint(last)["global_step"] == 8
