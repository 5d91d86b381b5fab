"""The Hydra configs of cnnexp, shipped inside the package so `python -m cnnexp` finds them from anywhere.

Importing this package registers the small OmegaConf resolvers the configs use (no other side effect):

- `${cnnexp.unique:}`: `<pid>-<4 random hex>`, cached per config, so that two runs started in the same
  microsecond (on one machine or several) never share a run folder.
- `${cnnexp.config_options:}`: the `--help` listing of every config group's options and the folder each comes
  from (`cnnexp.conf.sources.format_options`).
- `${cnnexp.abspath:PATH}` and `${cnnexp.basename:PATH}`: a path made absolute (against the working directory),
  and its last component (conf/logger/mlflow.yaml: the tracking store and the run name).
- `${cnnexp.job_dir:}`: a sweep job's folder name, `<job number>_<swept values>` (`cnnexp.sweepers.naming`).
"""

import os
import secrets
from pathlib import Path

from omegaconf import OmegaConf


def _unique() -> str:
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def _config_options() -> str:
    from cnnexp.conf.sources import format_options

    return format_options().replace("$", "$$")  # the help template is a string.Template: keep $ literal


def register_resolvers() -> None:
    """Register the resolvers once (idempotent; `use_cache` keeps one value per config object)."""
    if not OmegaConf.has_resolver("cnnexp.unique"):
        OmegaConf.register_new_resolver("cnnexp.unique", _unique, use_cache=True)
    if not OmegaConf.has_resolver("cnnexp.config_options"):
        OmegaConf.register_new_resolver("cnnexp.config_options", _config_options)
    if not OmegaConf.has_resolver("cnnexp.abspath"):
        OmegaConf.register_new_resolver("cnnexp.abspath", lambda path: str(Path(str(path)).expanduser().resolve()))
        OmegaConf.register_new_resolver("cnnexp.basename", lambda path: Path(str(path)).name)
    if not OmegaConf.has_resolver("cnnexp.job_dir"):
        from cnnexp.sweepers.naming import job_dir

        OmegaConf.register_new_resolver("cnnexp.job_dir", job_dir)


register_resolvers()
