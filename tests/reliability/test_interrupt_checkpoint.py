"""InterruptCheckpoint: SIGINT (Ctrl-C) and SIGTERM save checkpoints/interrupted.ckpt and stop cleanly."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from cnnexp.checkpoints import load_checkpoint, resolve_ckpt_path
from cnnexp.lit.callbacks.interrupt_checkpoint import InterruptCheckpoint

from .tiny import TinyModule, loaders, trainer

BATCHES = 8


class SendSignal(Callback):
    """Send `signum` to this thread at the start of global step `step` (`times` signals in a row).

    `raise_signal` delivers to the calling (main) thread and runs the Python handler before it returns, so each
    signal is handled before the next one is sent.
    """

    def __init__(self, signum: int, step: int, times: int = 1) -> None:
        self.signum, self.step, self.times = signum, step, times

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.times):
                signal.raise_signal(self.signum)


@pytest.mark.parametrize(("signum", "step", "saved_step"), [
    (signal.SIGINT, BATCHES + 2, BATCHES + 3),   # Ctrl-C: saved at the end of the running batch
    (signal.SIGTERM, BATCHES + 2, BATCHES + 3),  # SIGTERM: Lightning stops after the batch, then we save
])
def test_signal_saves_interrupted_checkpoint(tmp_path: Path, capfd: pytest.CaptureFixture, signum: int, step: int,
                                             saved_step: int) -> None:
    handler_before = signal.getsignal(signal.SIGINT)
    train, val = loaders()
    callback = InterruptCheckpoint()
    t = trainer(tmp_path, [callback, SendSignal(signum, step)], max_epochs=3)
    with pytest.raises(SystemExit):  # Lightning's graceful shutdown; no traceback
        t.fit(TinyModule(), train, val)
    path = tmp_path / "checkpoints" / "interrupted.ckpt"
    ckpt = load_checkpoint(path)
    assert ckpt["global_step"] == saved_step and ckpt["epoch"] == 1
    err = capfd.readouterr().err
    assert f"saved {path}" in err and f"resume={tmp_path}" in err
    assert signal.getsignal(signal.SIGINT) is handler_before, "the SIGINT handler was not restored"
    # resume=<run folder> picks it (newer than last.ckpt of epoch 0), and training finishes from there
    from omegaconf import OmegaConf
    assert resolve_ckpt_path(OmegaConf.create({"resume": str(tmp_path)})) == str(path)
    resumed = trainer(tmp_path / "resumed", max_epochs=3)
    resumed.fit(TinyModule(), train, val, ckpt_path=str(path))
    assert resumed.current_epoch == 3


@pytest.fixture
def python_sigint_handler():
    """SIGINT handled by Python's own handler (KeyboardInterrupt), as in a terminal; put back afterwards. The second
    Ctrl-C goes to the handler the run found, and a test run started in the background (`cmd &`, nohup, some CI
    runners) inherits SIG_IGN for SIGINT, which Python then keeps instead of installing its own."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("python_sigint_handler")
def test_second_ctrl_c_stops_at_once_without_saving(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    train, val = loaders()
    t = trainer(tmp_path, [InterruptCheckpoint(), SendSignal(signal.SIGINT, 3, times=2)], max_epochs=3)
    with pytest.raises(SystemExit):
        t.fit(TinyModule(), train, val)
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()
    assert "second Ctrl-C" in capfd.readouterr().err


def test_no_signal_no_checkpoint_and_handler_restored(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    train, val = loaders()
    trainer(tmp_path, [InterruptCheckpoint()], max_epochs=1).fit(TinyModule(), train, val)
    assert not (tmp_path / "checkpoints" / "interrupted.ckpt").exists()
    assert signal.getsignal(signal.SIGINT) is before


def test_dirpath_option(tmp_path: Path) -> None:
    train, val = loaders()
    cb = InterruptCheckpoint(dirpath=str(tmp_path / "elsewhere"), filename="stop.ckpt")
    with pytest.raises(SystemExit):
        trainer(tmp_path, [cb, SendSignal(signal.SIGINT, 1)], max_epochs=1).fit(TinyModule(), train, val)
    assert load_checkpoint(tmp_path / "elsewhere" / "stop.ckpt")["global_step"] == 2


class DropoutModule(TinyModule):
    """TinyModule with dropout on its input: training draws from the global torch RNG every step."""

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        x, y = batch
        return super().training_step((torch.nn.functional.dropout(x, 0.5, training=True), y), batch_idx)


@pytest.mark.parametrize("rng_state", [True, False])
def test_resume_replays_dropout_only_with_rng_state(tmp_path: Path, rng_state: bool) -> None:
    train, val = loaders()
    torch.manual_seed(0)
    full = DropoutModule()
    trainer(tmp_path / "full", [InterruptCheckpoint(rng_state=rng_state)], max_epochs=3).fit(full, train, val)

    torch.manual_seed(0)
    trainer(tmp_path / "part", [InterruptCheckpoint(rng_state=rng_state)], max_epochs=2).fit(DropoutModule(), train,
                                                                                              val)
    torch.manual_seed(123)  # whatever happened in between (other runs, other draws)
    resumed = DropoutModule()
    trainer(tmp_path / "resumed", [InterruptCheckpoint(rng_state=rng_state)], max_epochs=3).fit(
        resumed, train, val, ckpt_path=str(tmp_path / "part" / "checkpoints" / "last.ckpt"))
    same = all(torch.equal(a, b) for a, b in zip(full.parameters(), resumed.parameters()))
    assert same is rng_state
