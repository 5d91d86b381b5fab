"""NoProfiler: Lightning's "no profiling" profiler, without the cost of a context manager per hook call."""

from __future__ import annotations

import contextlib
from typing import ContextManager

from lightning.pytorch.profilers import PassThroughProfiler


class NoProfiler(PassThroughProfiler):
    """What `Trainer(profiler=None)` uses (`PassThroughProfiler`: records nothing), except that `profile()` hands out
    one shared no-op context manager instead of building a generator-based one on every call.

    Lightning wraps every hook call in `with trainer.profiler.profile(name):`: each callback's hooks, the
    LightningModule's, the strategy's, about eighty calls per training batch with the default callbacks. The
    base class makes each of them a new `contextlib.contextmanager` generator that calls `start` and `stop`, which
    do nothing here. The trainer configs use this class (`trainer.profiler`); `debug=profiler` or
    `trainer.profiler=simple|advanced|pytorch` replaces it with a real profiler.
    """

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str) -> ContextManager:
        """A no-op context manager (the same one every time; `action_name` is ignored)."""
        return self._nothing
