"""Sweeps end to end: `python -m cnnexp -m ...` in a subprocess (cwd = tmp_path, sweep dir under tmp_path).

- a 2x2 grid with fast_dev_run: one folder per combination, one shared TensorBoard root;
- a tiny real sweep (2 epochs of a few batches): the report's rows match the event files, and the HParams
  plugin data lists every run with its hyperparameters and val/acc_best;
- the joblib and submitit_local launchers; the slurm preset composes and renders a valid sbatch script;
- `+hparams_search=digits_optuna`: 3 trials return a value, a second call resumes the sqlite study (6 trials),
  and failing trials (an impossible kernel size) are recorded as FAIL while the search goes on.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# optuna 2.10 on SQLAlchemy 1.4 (the pinned pair) warns about SQLAlchemy 2.0; nothing to act on
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated API features detected")

FAST = ["model=tiny_cnn", "debug=fast_dev_run"]
# a real (logged) run in seconds: 2 epochs of 3 train / 2 val / 2 test batches
LIMITED = [
    "model=tiny_cnn",
    "debug=limit",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.accelerator=cpu",
    "logger.tensorboard.log_graph=false",  # the model graph is not what these tests check (and tracing costs time)
]


def cnnexp(cwd: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m cnnexp <overrides>` in `cwd` and fail the test with its output's tail if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "cnnexp", *overrides], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def job_overrides(sweep_dir: Path) -> dict[str, list[str]]:
    """{job folder name: its saved overrides} for every job of a sweep."""
    return {
        p.parent.parent.name: yaml.safe_load(p.read_text())
        for p in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"))
    }


def assert_jobs_completed(proc: subprocess.CompletedProcess, sweep: Path, jobs: list[str]) -> None:
    """A failed job returns NaN and the sweep goes on (exit 0): check that every job printed its result line."""
    lines = [line.rstrip() for line in proc.stdout.splitlines() if "run: " in line]
    for job in jobs:
        log = sweep / job / "__main__.log"
        assert any(line.endswith(f"{sweep.name}/{job}") for line in lines), (
            f"job {job} did not finish; its log:\n" + (log.read_text()[-3000:] if log.exists() else "(none)")
        )


def last_scalar(run_dir: Path, tag: str) -> float:
    """The last value of `tag` in the run's event files, read independently of cnnexp.report."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = []
    for path in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values += [(e.step, e.value) for e in acc.Scalars(tag)]
    assert values, f"{tag} not logged under {run_dir}"
    return max(values)[1]


# ---- grid sweeps -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_grid_sweep_2x2_fast_dev_run(tmp_path):
    sweep = tmp_path / "multirun" / "grid"
    proc = cnnexp(tmp_path, "-m", "model.conv_impl=custom,torch", "optimizer.lr=1e-3,3e-4", *FAST, f"hydra.sweep.dir={sweep}")
    jobs = job_overrides(sweep)
    assert sorted(jobs) == ["0", "1", "2", "3"]  # one folder per combination
    combos = {(o[0], o[1]) for o in jobs.values()}
    impls, lrs = ["model.conv_impl=custom", "model.conv_impl=torch"], ["optimizer.lr=0.001", "optimizer.lr=0.0003"]
    assert combos == set(itertools.product(impls, lrs))
    assert_jobs_completed(proc, sweep, list(jobs))
    for job in jobs:  # each job trained and tested in its own folder
        resolved = yaml.safe_load((sweep / job / "config_resolved.yaml").read_text())
        assert resolved["paths"]["output_dir"] == str(sweep / job)


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    """Two logged runs (lr 1e-3 and 3e-2) of 2 short epochs each."""
    cwd = tmp_path_factory.mktemp("real_sweep")
    sweep = cwd / "multirun" / "real"
    # the pictures callback is listed explicitly so this works whether or not callbacks/default.yaml has it
    pictures = "callbacks=[default,tensorboard_pictures]"
    proc = cnnexp(cwd, "-m", "optimizer.lr=1e-3,3e-2", pictures, *LIMITED, f"hydra.sweep.dir={sweep}")
    assert_jobs_completed(proc, sweep, ["0", "1"])
    return sweep


@pytest.mark.slow
def test_report_on_a_real_sweep_matches_the_event_files(real_sweep, tmp_path):
    from cnnexp.report import build_report

    report = build_report(real_sweep, out_dir=tmp_path)
    assert report.table.columns[:3] == ["run", "optimizer.lr", "val/acc_best"]
    assert len(report.table.rows) == 2  # one row per run
    best = [row[2] for row in report.table.rows]
    assert best == sorted(best, reverse=True)
    for row in report.table.rows:
        run_dir = real_sweep / row[0]
        cells = dict(zip(report.table.columns, row))
        assert cells["optimizer.lr"] == {"0": "0.001", "1": "0.03"}[row[0]]
        for tag in ["val/acc", "val/acc_best", "test/acc", "val/loss"]:
            assert cells[tag] == pytest.approx(last_scalar(run_dir, tag)), tag
    assert report.plot_path.stat().st_size > 0 and report.csv_path.read_text().count("\n") == 3


@pytest.mark.slow
def test_hparams_tab_lists_every_run_with_val_acc_best(real_sweep):
    """The sweep folder is one TensorBoard root: the multiplexer finds one run (HParams session) per job."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = EventMultiplexer().AddRunsFromDirectory(str(real_sweep))
    mux.Reload()
    sessions = {}
    for run, content in mux.PluginRunToTagToContent("hparams").items():
        for raw in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if data.HasField("session_start_info"):
                sessions[Path(run).parts[0]] = data.session_start_info.hparams
            if data.HasField("experiment"):
                assert "val/acc_best" in [m.name.tag for m in data.experiment.metric_infos]
    assert sorted(sessions) == ["0", "1"]
    assert {run: hp["optimizer/lr"].number_value for run, hp in sessions.items()} == {"0": 0.001, "1": 0.03}
    assert all(hp["model/conv_impl"].string_value == "custom" for hp in sessions.values())
    for run in sessions:
        assert 0.0 <= last_scalar(real_sweep / run, "val/acc_best") <= 1.0


@pytest.mark.slow
def test_pictures_are_logged_in_a_real_run(real_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(real_sweep / "0" / "tensorboard"), size_guidance={"images": 0, "histograms": 0})
    acc.Reload()
    images = acc.Tags()["images"]
    expected = {"filters/net.layers.1", "feature_maps/input", "feature_maps/net.layers.1", "val/confusion_matrix"}
    assert expected <= set(images), images
    filters = acc.Images("filters/net.layers.1")
    assert len(filters) == 2  # the first epoch and the last
    assert (filters[0].height, filters[0].width) == (2 * 51 + 3, 4 * 51 + 3)  # 8 filters: 48 px tiles, 4 x 2
    assert "weights/net.layers.1.weight" in acc.Tags()["histograms"]


def test_pictures_callback_is_on_by_default():
    from hydra import compose, initialize_config_module

    import cnnexp.conf  # noqa: F401

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config")
    assert "tensorboard_pictures" in cfg.callbacks
    assert cfg.callbacks.tensorboard_pictures._target_.endswith("TensorBoardPictures")


@pytest.mark.slow
@pytest.mark.parametrize("launcher,extra", [("joblib", ["hydra.launcher.n_jobs=2"]), ("submitit_local", [])])
def test_launchers_run_every_job(tmp_path, launcher, extra):
    sweep = tmp_path / "multirun" / launcher
    proc = cnnexp(tmp_path, "-m", f"hydra/launcher={launcher}", *extra, "optimizer.lr=1e-3,3e-4", *FAST, f"hydra.sweep.dir={sweep}")
    jobs = job_overrides(sweep)
    assert sorted(o[0] for o in jobs.values()) == ["optimizer.lr=0.0003", "optimizer.lr=0.001"]
    if launcher == "joblib":  # submitit_local jobs print into <sweep>/.submitit/, not to this stdout
        assert_jobs_completed(proc, sweep, list(jobs))
    assert all((sweep / job / "config_resolved.yaml").is_file() for job in jobs)


def test_slurm_preset_renders_an_sbatch_script(tmp_path, monkeypatch):
    """Compose hydra/launcher=slurm, build the real SlurmLauncher and stop it at submission (no cluster here)."""
    import submitit
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    import cnnexp.conf  # noqa: F401  (resolvers)

    fake_bin = tmp_path / "bin"  # submitit refuses to build a slurm executor without srun on PATH
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{Path(sys.executable).parent}:/usr/bin:/bin")
    overrides = ["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}/sweep", "hydra.launcher.partition=gpu"]
    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"

    class Submitted(Exception):
        pass

    captured = {}

    def fake_map_array(executor, fn, *args):
        captured["executor"], captured["num_jobs"] = executor, len(args[0])
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["optimizer.lr=0.1"], ["optimizer.lr=0.2"]], initial_job_idx=0)
    assert captured["num_jobs"] == 2
    script = captured["executor"]._executor._make_submission_file_text("python -c pass", "uid")
    for line in ["--partition=gpu", "--time=120", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--job-name=cnnexp-train"]:
        assert f"#SBATCH {line}\n" in script, script
    assert f"{tmp_path}/sweep/.submitit/" in script


# ---- Optuna ------------------------------------------------------------------------------------------


def optuna_trials(storage: str, study: str = "digits_optuna") -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=storage).trials


@pytest.mark.parametrize(
    "extra",
    [["model=keras_cnn"], ["model=tiny_cnn"], ["model=keras_cnn_dropout", "hydra/launcher=joblib"], ["hydra/launcher=slurm"]],
)
def test_hparams_search_config_composes(extra):
    """The search space's keys exist in the composed config (lecture and tiny model), with any launcher."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import cnnexp.conf  # noqa: F401

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["+hparams_search=digits_optuna", *extra], return_hydra_config=True)
    model = cfg.hydra.runtime.choices.model
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/acc_best"
    assert sweeper.storage == "sqlite:///outputs/optuna/digits.db" and sweeper.study_name == "digits_optuna"
    assert sweeper.max_failure_rate == 1.0 and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == {"optimizer.lr", "data.batch_size", "model.net.layers.1.filters", "model.dropout"}
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", (model, key)
    assert cfg.model.net.layers[1]._target_ == "cnnexp.layers.Conv2D"
    assert "fail_non_finite" in cfg.hydra.callbacks


@pytest.mark.slow
def test_optuna_search_returns_a_value_and_resumes(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path}/outputs/optuna/digits.db"  # the default storage, relative to the cwd
    for call, expected in [(1, 3), (2, 6)]:
        sweep = tmp_path / "multirun" / f"search{call}"
        cnnexp(tmp_path, "+hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", *FAST, f"hydra.sweep.dir={sweep}")
        results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
        assert 0.0 <= results["best_value"] <= 1.0
        assert set(results["best_params"]) == {"optimizer.lr", "data.batch_size", "model.net.layers.1.filters", "model.dropout"}
        trials = optuna_trials(storage)
        assert len(trials) == expected
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert len(job_overrides(sweep)) == 3


@pytest.mark.slow
def test_optuna_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path}/nested/folder/failing.db"  # the folder is created by the search
    cnnexp(
        tmp_path, "+hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=3",
        f"hydra.sweeper.storage={storage}", "model.net.layers.1.kernel_size=choice(3,20)",
        "model.net.layers.1.padding=valid", *FAST, f"hydra.sweep.dir={tmp_path}/multirun/failing",
    )  # a 20x20 'valid' kernel does not fit an 8x8 digit: ShapeError, the job returns NaN
    trials = optuna_trials(storage)
    assert len(trials) == 3
    states = {t.number: (t.params["model.net.layers.1.kernel_size"], t.state) for t in trials}
    assert {k for k, _ in states.values()} == {3, 20}, f"seed 3 should sample both kernel sizes: {states}"
    for kernel, state in states.values():
        assert state == (optuna.trial.TrialState.FAIL if kernel == 20 else optuna.trial.TrialState.COMPLETE)
    assert all(not math.isnan(t.value) for t in trials if t.state == optuna.trial.TrialState.COMPLETE)
