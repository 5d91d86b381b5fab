"""EarlyChecks: a Hydra callback that rejects a bad config before the run folder exists and before lightning loads.

Hydra calls `on_run_start` with the composed config after parsing the command line and before `run_job` creates
the run folder, writes `.hydra/` and opens the log. A user error found here prints one `error: ... Fix: ...` line
and exits with status 2, leaving nothing on disk. Checks, cheapest first:

1. the run folder must not be another run's folder (`hydra.run.dir=<an earlier run>` would overwrite its files);
2. `cnnexp.config_checks.check_config`: types and ranges (omegaconf only: milliseconds);
3. `cnnexp.config_checks.check_arguments`: arguments the layers / optimizer / scheduler do not take (imports torch).

In a multirun (`-m`), `on_multirun_start` runs checks 2 and 3 on the config without the swept values (a value
every job would share is wrong: nothing is launched); `train()` runs the same checks in each job, whose failure
is recorded as NaN while the sweep goes on.
Attached in `conf/hydra/default.yaml` as `hydra.callbacks.early_checks`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnexp.cli import exit_with_error
from cnnexp.errors import CnnexpError, ConfigError
from cnnexp.run_folders import is_run_dir


def check_run_dir(folder: str | os.PathLike, key: str = "hydra.run.dir") -> None:
    """Raise ConfigError when `folder` belongs to another run, or cannot be created and written to.

    Creates the folder (Hydra would, a moment later): the only reliable test of a path, whoever runs.
    """
    path = Path(folder).expanduser()
    if is_run_dir(path):
        raise ConfigError(f"{key}={path} is the folder of another run; a run never writes into another run's "
                          f"folder. Fix: drop {key} (every run gets a new folder), or repeat that run with "
                          f"`python -m cnnexp.rerun {path}`.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot create the run folder {path} ({error.strerror or error}). Fix: choose a folder "
                          f"you can write to, e.g. paths.log_dir=outputs or {key}=<writable folder>.") from None


def check_before_run(config: DictConfig) -> None:
    """Every check that needs no run folder (see the module docstring); raises a CnnexpError."""
    from cnnexp.config_checks import check_arguments, check_config

    run_dir = OmegaConf.select(config, "hydra.run.dir", default=None)
    if run_dir and is_run_dir(str(run_dir)):
        check_run_dir(str(run_dir))
    check_config(config)
    check_arguments(config)
    if run_dir:
        check_run_dir(str(run_dir))  # last: it creates the folder, which only a run that goes on should leave


class EarlyChecks(Callback):
    """Hydra callback: `check_before_run` in `on_run_start`; a user error exits 2 before the run folder exists."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_before_run(config)
        except CnnexpError as error:
            exit_with_error(str(error))  # SystemExit passes through Hydra's callback wrapper

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.config_checks import check_arguments, check_config

        try:
            check_config(config)
            check_arguments(config)
        except CnnexpError as error:
            exit_with_error(str(error))
