"""Checkpoint files, one job per module:

- `loading.py`: `load_checkpoint(path)`, `torch.load(weights_only=True)` with the `safe_globals()` allowlist
  (a crafted pickle cannot run code; `UnsafeCheckpointError` names what it asked for).
- `rng.py`: `rng_states()` / `set_rng_states()`, the global random states in a weights_only-safe form.
- `resume.py`: `resolve_ckpt_path(cfg)`, the checkpoint `ckpt_path` / `resume` name, refused when it was trained
  with another model, optimizer or data (`check_resumable`).
- writing is `cnnexp.atomic_write.atomic_torch_save` (temp file + fsync + rename, shared by every writer);
  "the run folder of this path" is `cnnexp.run_folders.run_dir_of`.
"""

from cnnexp.atomic_write import atomic_torch_save
from cnnexp.checkpoints.loading import UnsafeCheckpointError, load_checkpoint, safe_globals
from cnnexp.checkpoints.resume import (
    INTERRUPTED,
    LAST,
    MATCH_KEYS,
    check_resumable,
    find_latest_run_checkpoint,
    resolve_ckpt_path,
    resume_errors,
)
from cnnexp.checkpoints.rng import rng_states, set_rng_states
from cnnexp.run_folders import CKPT_DIR

__all__ = [
    "CKPT_DIR",
    "INTERRUPTED",
    "LAST",
    "MATCH_KEYS",
    "UnsafeCheckpointError",
    "atomic_torch_save",
    "check_resumable",
    "find_latest_run_checkpoint",
    "load_checkpoint",
    "resolve_ckpt_path",
    "resume_errors",
    "rng_states",
    "safe_globals",
    "set_rng_states",
]
