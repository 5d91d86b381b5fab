"""Where Hydra looks for cnnexp's configs: the user's folders first, then the packaged cnnexp/conf.

Hydra 1.3 loads a config `group/option` from the FIRST entry of its search path that has it, and lists a
group's options as the union over every entry. Hydra's own ways to add a folder (`hydra.searchpath=[...]`,
`--config-dir`) append it AFTER the packaged configs: they add new option names, but an option with a packaged
name is silently never read. So that a user's `conf/model/keras_cnn.yaml` really replaces the packaged one,
`CnnexpSearchPathPlugin` puts the user's folders BEFORE cnnexp's packaged configs:

    hydra's own configs (pkg://hydra.conf)
    ./conf of the working directory           provider "cnnexp ./conf"            (if the folder exists)
    each folder of $CNNEXP_CONFIG_DIR         provider "cnnexp $CNNEXP_CONFIG_DIR" (os.pathsep-separated)
    cnnexp's packaged configs (pkg://cnnexp/conf)
    hydra.searchpath entries                  (Hydra: after the packaged configs, new names only)
    structured configs

The user's folders hold config groups only: a top-level `config.yaml` in them is NOT read (a working folder
with another Hydra app's `conf/config.yaml` must not replace cnnexp's primary config; `--config-dir DIR
--config-name NAME` is Hydra's explicit way to do that). They are read by `UserConfigSource`, which also
turns a YAML syntax error into a `ConfigError` naming the file.

The plugin acts only when the application's main configs are cnnexp's; other Hydra apps in the same
environment see no change. Hydra finds it through `hydra_plugins/cnnexp_searchpath/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin

from hydra._internal.core_plugins.file_config_source import FileConfigSource

ENV_VAR = "CNNEXP_CONFIG_DIR"
USER_DIR = "conf"
USER_SCHEME = "cnnexp-user"
PACKAGED = ("pkg://cnnexp/conf", "pkg://cnnexp.conf")
CWD_PROVIDER = f"cnnexp ./{USER_DIR}"
ENV_PROVIDER = f"cnnexp ${ENV_VAR}"


def is_cnnexp_main(path: str) -> bool:
    """True for the search path entry of cnnexp's packaged configs (`python -m cnnexp`, compose API)."""
    return path.rstrip("/") in PACKAGED or path.replace("\\", "/").rstrip("/").endswith("/cnnexp/conf")


def user_config_dirs(cwd: str | os.PathLike | None = None, environ: dict[str, str] | None = None
                     ) -> list[tuple[str, Path]]:
    """`[(provider, folder)]` in search order: `<cwd>/conf` if it exists, then each folder of $CNNEXP_CONFIG_DIR.

    A folder named in $CNNEXP_CONFIG_DIR must exist (a typo would otherwise hide every config in it).
    """
    environ = os.environ if environ is None else environ
    dirs: list[tuple[str, Path]] = []
    local = Path(cwd or os.getcwd()).resolve() / USER_DIR
    if local.is_dir():
        dirs.append((CWD_PROVIDER, local))
    for entry in filter(None, environ.get(ENV_VAR, "").split(os.pathsep)):
        folder = Path(entry).expanduser().resolve()
        if not folder.is_dir():
            from cnnexp.errors import ConfigError

            raise ConfigError(f"{ENV_VAR}={entry}: no such folder. Fix: point {ENV_VAR} at a folder of config "
                              f"groups (experiment/, model/, data/, ...) or unset it.")
        if folder not in [d for _, d in dirs]:
            dirs.append((ENV_PROVIDER, folder))
    return dirs


class CnnexpSearchPathPlugin(SearchPathPlugin):
    """Put the user's config folders in front of cnnexp's packaged configs (see the module docstring)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        mains = [e for e in search_path.get_path() if e.provider == "main" and is_cnnexp_main(e.path)]
        if not mains:
            return
        for provider, folder in user_config_dirs():
            search_path.prepend(provider, f"{USER_SCHEME}://{folder}", anchor=SearchPathQuery(provider="main"))


class UserConfigSource(FileConfigSource):
    """A folder of config groups: like `file://`, but without top-level configs and with clear YAML errors."""

    @staticmethod
    def scheme() -> str:
        return USER_SCHEME

    @staticmethod
    def _top_level(config_path: str) -> bool:
        return "/" not in config_path.strip("/")

    def is_config(self, config_path: str) -> bool:
        return not self._top_level(config_path) and super().is_config(config_path)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path.strip("/") == "" and results_filter != ObjectType.GROUP:
            # top-level configs are hidden: keep the groups only
            return super().list(config_path, ObjectType.GROUP)
        return super().list(config_path, results_filter)

    def load_config(self, config_path: str) -> ConfigResult:
        import yaml

        try:
            return super().load_config(config_path)
        except yaml.YAMLError as error:
            from cnnexp.errors import ConfigError

            full_path = Path(self.path) / self._normalize_file_name(config_path)
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ConfigError(f"{full_path}: not valid YAML{where} ({problem}). Fix: correct the file's YAML "
                              "(indentation with spaces, `key: value`, quotes around values with ':' or '#').") \
                from None
