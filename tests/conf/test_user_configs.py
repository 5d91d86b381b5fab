"""A user's own configs: ./conf of the working folder and $CNNEXP_CONFIG_DIR, before the packaged configs.

In-process tests compose as `python -m cnnexp` would from a temporary working folder; a few subprocess tests run
`python -m cnnexp` itself (--help and a YAML error need no lightning import; one real run is marked slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra.utils import instantiate

from cnnexp.conf.search_path import ENV_VAR, CnnexpSearchPathPlugin
from cnnexp.conf.sources import check_targets_import, format_options
from cnnexp.errors import ConfigError
from cnnexp.train import fill_data_shape

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "# @package _global_\ndefaults:\n  - override /model: tiny_cnn\ntask_name: {name}\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder, the current directory for the test, with no $CNNEXP_CONFIG_DIR."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return folder


def test_an_experiment_in_the_working_folders_conf_is_found_by_name(workdir, make_cfg):
    write(workdir / "conf/experiment/x.yaml", EXPERIMENT.format(name="from_conf"))
    cfg = make_cfg("+experiment=x")
    assert cfg.task_name == "from_conf"
    assert cfg.model.net.layers[1].filters == 8  # tiny_cnn, chosen by the experiment's defaults list


def test_a_user_option_replaces_the_packaged_option_of_the_same_name(workdir, make_cfg):
    assert make_cfg("model=tiny_cnn", run="a").model.net.layers[1].filters == 8  # control: the packaged one
    write(workdir / "conf/model/tiny_cnn.yaml",
          "defaults:\n  - keras_cnn\n  - _self_\nnet:\n  layers:\n"
          "    - {_target_: cnnexp.layers.Conv2D, filters: 5, kernel_size: 3}\n"
          "    - {_target_: cnnexp.layers.Flatten}\n    - {_target_: cnnexp.layers.Dense, units: null}\n")
    assert make_cfg("model=tiny_cnn", run="b").model.net.layers[0].filters == 5


def test_a_config_yaml_in_the_working_folders_conf_does_not_replace_the_primary_config(workdir, make_cfg):
    write(workdir / "conf/config.yaml", "defaults:\n  - data: mnist\nforeign_app: true\n")
    cfg = make_cfg()
    assert "foreign_app" not in cfg and cfg.data._target_.endswith("DigitsDataModule")


def test_cnnexp_config_dir_is_searched_after_the_working_folders_conf(workdir, tmp_path, monkeypatch, make_cfg):
    elsewhere = tmp_path / "shared_configs"
    write(elsewhere / "experiment/x.yaml", EXPERIMENT.format(name="from_env_dir"))
    write(elsewhere / "experiment/y.yaml", EXPERIMENT.format(name="only_in_env_dir"))
    write(workdir / "conf/experiment/x.yaml", EXPERIMENT.format(name="from_conf"))
    monkeypatch.setenv(ENV_VAR, str(elsewhere))
    assert make_cfg("+experiment=x", run="a").task_name == "from_conf"
    assert make_cfg("+experiment=y", run="b").task_name == "only_in_env_dir"


def test_hydra_searchpath_adds_new_names_but_a_packaged_name_wins(workdir, tmp_path, make_cfg):
    extra = tmp_path / "extra"
    write(extra / "experiment/z.yaml", EXPERIMENT.format(name="from_searchpath"))
    write(extra / "model/tiny_cnn.yaml", "defaults:\n  - keras_cnn\n  - _self_\n")  # never read: packaged first
    searchpath = f"hydra.searchpath=[file://{extra}]"
    cfg = make_cfg(searchpath, "+experiment=z", "model=tiny_cnn")
    assert cfg.task_name == "from_searchpath" and cfg.model.net.layers[1].filters == 8


def test_a_missing_cnnexp_config_dir_is_a_config_error(workdir, monkeypatch, make_cfg):
    monkeypatch.setenv(ENV_VAR, str(workdir / "no_such_folder"))
    with pytest.raises(ConfigError, match=f"{ENV_VAR}=.*no_such_folder: no such folder.*Fix:"):
        make_cfg()


def test_other_hydra_apps_search_path_is_unchanged(workdir):
    write(workdir / "conf/experiment/x.yaml", EXPERIMENT.format(name="x"))
    for main, changed in [("pkg://someone_else.conf", False), ("pkg://cnnexp.conf", True)]:
        search_path = ConfigSearchPathImpl()
        search_path.append("hydra", "pkg://hydra.conf")
        search_path.append("main", main)
        CnnexpSearchPathPlugin().manipulate_search_path(search_path)
        providers = [element.provider for element in search_path.get_path()]
        assert providers == (["hydra", "cnnexp ./conf", "main"] if changed else ["hydra", "main"])


def test_a_yaml_syntax_error_names_the_file_and_the_line(workdir, make_cfg):
    bad = write(workdir / "conf/model/broken.yaml", "net:\n  layers: [\n    {_target_: x\n")
    with pytest.raises(ConfigError) as error:
        make_cfg("model=broken")
    assert str(bad) in str(error.value) and "not valid YAML at line" in str(error.value)


def test_an_unknown_target_names_the_key_and_the_file(workdir, make_cfg):
    check_targets_import(make_cfg("model=tiny_cnn", run="a"))  # control: every packaged _target_ imports
    bad = write(workdir / "conf/model/typo.yaml",
                "defaults:\n  - keras_cnn\n  - _self_\nnet:\n  layers:\n"
                "    - {_target_: cnnexp.layers.Conv2d, filters: 5, kernel_size: 3}\n")
    with pytest.raises(ConfigError) as error:
        check_targets_import(make_cfg("model=typo", run="b"))
    message = str(error.value)
    assert "model.net.layers[0]._target_=cnnexp.layers.Conv2d" in message and str(bad) in message


def test_the_help_listing_says_where_each_option_comes_from(workdir, tmp_path, monkeypatch, make_cfg):
    write(workdir / "conf/experiment/x.yaml", EXPERIMENT.format(name="x"))
    write(workdir / "conf/model/tiny_cnn.yaml", "defaults:\n  - keras_cnn\n  - _self_\n")
    write(tmp_path / "elsewhere/data/mine.yaml", "defaults:\n  - image_folder\n  - _self_\n")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    make_cfg("model=tiny_cnn")  # sets the running app's HydraConfig, as --help does
    listing = format_options()
    assert "x [./conf]" in listing and "tiny_cnn* [./conf, replaces packaged]" in listing
    assert f"mine [${ENV_VAR}]" in listing and "keras_cnn," in listing and "digits*," in listing
    assert listing.index(str(workdir / "conf")) < listing.index(str(tmp_path / "elsewhere"))


@pytest.mark.parametrize("name", ["my_images"])
def test_the_repository_conf_examples_build_data_and_model(monkeypatch, make_cfg, data_root, name):
    monkeypatch.chdir(REPO)
    monkeypatch.delenv(ENV_VAR, raising=False)
    cfg = make_cfg(f"+experiment={name}", f"data.data_dir={data_root / 'flower_photos'}", data_dir=data_root)
    assert cfg.task_name == name and cfg.data.image_size == [64, 64] and len(cfg.model.net.layers) == 8
    check_targets_import(cfg)
    datamodule = instantiate(cfg.data)
    fill_data_shape(cfg, datamodule)
    model = instantiate(cfg.model)
    assert model(torch.rand(2, 3, 64, 64) * 255).shape == (2, 5)  # (N, classes of flower_photos)


# -- python -m cnnexp itself, from a working folder of the user's --------------------------------------------------
def run_cnnexp(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    if ENV_VAR not in (env or {}):
        environ.pop(ENV_VAR, None)
    return subprocess.run([sys.executable, "-m", "cnnexp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=environ)


def test_help_from_a_users_folder_lists_the_users_options(tmp_path):
    write(tmp_path / "conf/experiment/x.yaml", EXPERIMENT.format(name="x"))
    result = run_cnnexp("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "x [./conf]" in result.stdout and f"./conf           {tmp_path / 'conf'}" in result.stdout


def test_a_yaml_error_is_one_error_line_naming_the_file(tmp_path):
    bad = write(tmp_path / "conf/experiment/x.yaml", "# @package _global_\ntask_name: [unclosed\n")
    result = run_cnnexp("+experiment=x", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and errors == [line for line in errors if line.startswith(f"error: {bad}: ")]
    assert len(errors) == 1 and "not valid YAML at line 3" in errors[0] and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_repository_conf_example_experiment_runs_from_a_users_folder(tmp_path, data_root):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    result = run_cnnexp("+experiment=my_images", f"paths.data_dir={data_root}",
                        f"data.data_dir={data_root / 'flower_photos'}", "data.image_size=[16,16]",
                        "trainer.max_epochs=1", "~callbacks.tensorboard_pictures", "~callbacks.rich_progress",
                        "trainer.enable_progress_bar=false", "logger=csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1].startswith("test/acc=")
    saved = list((tmp_path / "outputs/runs").glob("*/config_resolved.yaml"))
    assert len(saved) == 1 and "task_name: my_images" in saved[0].read_text()
