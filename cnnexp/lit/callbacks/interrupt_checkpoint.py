"""InterruptCheckpoint: Ctrl-C (SIGINT) or SIGTERM saves `checkpoints/interrupted.ckpt` and stops cleanly.

The first Ctrl-C only sets a flag (and restores the previous handler): at the end of the current training batch,
the point where Lightning's own step-based checkpoints are taken, the callback writes the checkpoint, prints how
to resume, and raises `KeyboardInterrupt`, which Lightning turns into a graceful shutdown (loggers closed, exit
status 1). A second Ctrl-C interrupts at once without saving. SIGTERM (a scheduler's kill) is handled by
Lightning, which stops at a batch boundary with `SIGTERMException`; the callback then saves the same file, and
`cnnexp.train.train` turns the exception (a `SystemExit` with no code, i.e. exit status 0) into exit status 143,
so that schedulers and CI see a stopped job, not a success.

Resuming: `resume=<run folder>` or `resume=true` picks the newer of `last.ckpt` and `interrupted.ckpt`
(see `cnnexp.checkpoints.resolve_ckpt_path`). With `rng_state=True` the callback also stores the python, numpy
and torch random states in every checkpoint Lightning writes (its `state_dict`) and restores them on resume, so a
run resumed from an epoch-end checkpoint draws the same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from cnnexp.checkpoints import CKPT_DIR, INTERRUPTED, rng_states, set_rng_states
from cnnexp.run_folders import run_dir_of


class InterruptCheckpoint(Callback):
    """Save a resumable checkpoint when the run is interrupted by Ctrl-C or SIGTERM.

    Args:
        dirpath: folder of the checkpoint; None: the ModelCheckpoint's folder, else `<default_root_dir>/checkpoints`.
        filename: the checkpoint's file name.
        rng_state: keep the global random states in every checkpoint and restore them on resume.
    """

    def __init__(self, dirpath: str | None = None, filename: str = INTERRUPTED, rng_state: bool = True) -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.rng_state = rng_state
        self.requested: int | None = None  # the signal number once a Ctrl-C arrived
        self.saved_path: Path | None = None
        self._previous: Any = None
        self._installed = False

    # -- random states in every checkpoint (Lightning calls these on save and on resume) --------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states()} if self.rng_state else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.rng_state and "rng" in state_dict:
            set_rng_states(state_dict["rng"])

    # -- signal handling -------------------------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        # Installed here, after Lightning's signal connector saved the handlers it restores at teardown.
        if threading.current_thread() is not threading.main_thread():
            return
        self.requested, self.saved_path = None, None
        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._restore()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self._installed = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.requested = signum
        self._restore()  # a second Ctrl-C raises KeyboardInterrupt at once
        sys.stderr.write("\nInterrupt received: saving a checkpoint after this batch (Ctrl-C again to stop now).\n")
        sys.stderr.flush()

    # -- saving ----------------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.requested is None:
            return
        self._save(trainer, "Ctrl-C")
        raise KeyboardInterrupt

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._restore()
        if self.saved_path is not None or trainer.state.fn != "fit":
            return
        if isinstance(exception, KeyboardInterrupt) and self.requested is not None:  # the second Ctrl-C
            sys.stderr.write("Stopped by a second Ctrl-C: no interrupt checkpoint was written; "
                             "resume=true continues from the last epoch-end checkpoint.\n")
        elif isinstance(exception, (SIGTERMException, KeyboardInterrupt)):  # SIGTERM, or a Ctrl-C we did not see
            try:  # Lightning still has to close the loggers after this hook: never raise from here
                self._save(trainer, "SIGTERM" if isinstance(exception, SIGTERMException) else "KeyboardInterrupt")
            except Exception as exc:  # noqa: BLE001
                sys.stderr.write(f"Could not save an interrupt checkpoint: {exc}\n")

    def checkpoint_path(self, trainer: Any) -> Path:
        """Where the checkpoint goes (see `dirpath`)."""
        if self.dirpath is not None:
            return Path(self.dirpath) / self.filename
        ckpt_cb = getattr(trainer, "checkpoint_callback", None)
        folder = getattr(ckpt_cb, "dirpath", None) or Path(trainer.default_root_dir) / CKPT_DIR
        return Path(folder) / self.filename

    def _save(self, trainer: Any, why: str) -> None:
        path = self.checkpoint_path(trainer)
        # the full state (optimizer, loops), through the strategy's CheckpointIO (atomic with AtomicCheckpointIO)
        trainer.save_checkpoint(path, weights_only=False)
        self.saved_path = path
        run_dir = run_dir_of(path)
        sys.stderr.write(
            f"{why}: saved {path} at epoch {trainer.current_epoch}, global step {trainer.global_step}.\n"
            f"Resume with: python -m cnnexp {_overrides()}resume={run_dir}   (or ckpt_path={path})\n"
        )
        sys.stderr.flush()


def _overrides() -> str:
    """This run's command-line overrides followed by a space ("" outside a Hydra run)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = [o for o in HydraConfig.get().overrides.task if not o.startswith(("resume=", "ckpt_path="))]
    except Exception:  # not inside a Hydra app
        return ""
    return "".join(shlex.quote(o) + " " for o in task)
