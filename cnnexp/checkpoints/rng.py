"""The global random states (python, numpy, torch CPU/CUDA) as tensors and ints, so that they fit in a checkpoint
that loads with weights_only=True (a resumed run then draws the same dropout masks as an uninterrupted one)."""

from __future__ import annotations

from typing import Any

import torch


def rng_states() -> dict[str, Any]:
    """Every global random state a training step may draw from, as tensors / ints / tuples (weights_only-safe)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),  # (version, tuple of 625 ints, None)
        "numpy": (str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states()` returned (missing entries are left alone)."""
    import random

    import numpy as np

    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    cuda = states.get("torch.cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
