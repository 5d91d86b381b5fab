"""Optuna storages that many workers may open at once, with no server.

- `sqlite:///path/study.db`: an RDB storage. Several processes creating the same new file race on the schema
  (SQLAlchemy IntegrityError "UNIQUE constraint failed: alembic_version.version_num", or "database is
  locked"); `open_storage` retries with a random back-off, and waits up to a minute for sqlite's lock. The
  folder is created. For one machine (several shells, joblib); sqlite over NFS locks badly.
- `journal:path/study.journal`: Optuna's JournalStorage on an append-only file (JournalFileBackend, with a
  lock that works on NFS): for many workers on a shared file system (a SLURM array), no database at all.
- anything else (`postgresql://...`, `mysql://...`) is passed to Optuna as an RDB URL.

`create_or_load_study` creates the study or loads it when another worker was first (a second invocation resumes
it); relative sqlite and journal paths are made absolute (`absolute_storage`) so that jobs started elsewhere
(SLURM) reach the same file.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# how a trial's job finds its trial (set by the sweeper through hydra.job.env_set, read by pruning.OptunaPruning)
ENV_STORAGE = "CNNEXP_OPTUNA_STORAGE"
ENV_STUDY = "CNNEXP_OPTUNA_STUDY"
ENV_TRIAL = "CNNEXP_OPTUNA_TRIAL"
PRUNED_ATTR = "pruned_at_epoch"  # the trial's user attribute that says its job stopped on the pruner's word

SQLITE = "sqlite:///"
JOURNAL = "journal:"
ATTEMPTS = 20


def absolute_storage(url: str | None) -> str | None:
    """`sqlite:///rel.db` -> `sqlite:////abs/rel.db`, `journal:rel` -> `journal:/abs/rel`; others unchanged."""
    if not url:
        return None
    for prefix in (SQLITE, JOURNAL):
        if url.startswith(prefix):
            path, sep, query = url.removeprefix(prefix).partition("?")
            if path and path != ":memory:":
                return f"{prefix}{Path(path).expanduser().resolve()}{sep}{query}"
    return url


def _retry(what: str, make: Any) -> Any:
    """Call `make()` until it stops failing with a database race (at most `ATTEMPTS` times)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(1, ATTEMPTS + 1):
        try:
            return make()
        except (IntegrityError, OperationalError) as error:
            if attempt == ATTEMPTS:
                raise
            log.debug("%s: %s (another worker is creating it); retrying", what, type(error).__name__)
            time.sleep(random.uniform(0.05, 0.25) * attempt)
    raise AssertionError("unreachable")


def open_storage(url: str | None) -> Any:
    """An Optuna storage for `url` (None: in memory, this process only). See the module docstring."""
    import optuna

    url = absolute_storage(url)
    if url is None:
        return None
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix(JOURNAL))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith(SQLITE):
        Path(url.removeprefix(SQLITE).partition("?")[0]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # seconds to wait for another writer's lock
    return _retry("creating the storage", lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs))


def create_or_load_study(storage: Any, study_name: str | None, directions: list[str], sampler: Any = None,
                         pruner: Any = None) -> Any:
    """Create the study, or load it if it exists (another worker, an earlier invocation): race-free."""
    import optuna

    return _retry("creating the study", lambda: optuna.create_study(
        storage=storage, study_name=study_name, directions=directions, sampler=sampler, pruner=pruner,
        load_if_exists=True,
    ))
