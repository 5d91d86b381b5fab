"""Sweeps end to end: `python -m cnnexp -m ...` in a subprocess (cwd = tmp_path, sweep dir under tmp_path).

- a 2x2 grid with fast_dev_run: one folder per combination, named from its values, one shared TensorBoard root;
- a tiny real sweep (2 epochs of a few batches): the report's rows match the event files; the HParams plugin
  data lists every run with at most 30 hyperparameters, the swept one first, and val/acc_best has only its
  real points; the sweep ends with the summary block;
- the joblib and submitit_local launchers; the slurm preset composes and renders a valid sbatch script, also
  for a 2-node job;
- `+hparams_search=digits_optuna` (cnnexp's Optuna sweeper): trials return a value, a second call resumes the
  sqlite study, failing trials (an impossible kernel size) are recorded as FAIL while the search goes on, and
  two searches started together on a new study both finish.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def cnnexp_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "cnnexp", *overrides]


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def cnnexp(cwd: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m cnnexp <overrides>` in `cwd` and fail the test with its output's tail if it fails."""
    return check(subprocess.run(cnnexp_command(*overrides), cwd=cwd, capture_output=True, text=True, timeout=timeout))


def job_overrides(sweep_dir: Path) -> dict[str, list[str]]:
    """{job folder name: its saved overrides} for every job of a sweep."""
    return {
        p.parent.parent.name: yaml.safe_load(p.read_text())
        for p in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"))
    }


def assert_jobs_completed(proc: subprocess.CompletedProcess, sweep: Path, jobs: list[str]) -> None:
    """A failed job returns NaN and the sweep goes on (exit 0): check that every job's run.json says it succeeded
    with a test accuracy (not the printed result lines: parallel jobs share one stdout, and another job's progress
    bar can land on the same line)."""
    for job in jobs:
        run = sweep / job / "run.json"
        info = json.loads(run.read_text()) if run.exists() else {}
        log = sweep / job / "train.log"
        assert info.get("status") == "success" and "test/acc" in info.get("metrics", {}), (
            f"job {job} did not finish: run.json {info.get('status', 'missing')}; its log:\n"
            + (log.read_text()[-3000:] if log.exists() else "(none)") + f"\nsweep stdout:\n{proc.stdout[-2000:]}"
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
    impls, lrs = ["model.conv_impl=custom", "model.conv_impl=torch"], ["optimizer.lr=0.001", "optimizer.lr=0.0003"]
    assert {(o[0], o[1]) for o in jobs.values()} == set(itertools.product(impls, lrs))  # one folder per combination
    for name, overrides in jobs.items():  # named by job number and swept values only (not the shared FAST ones)
        assert name.split("_", 1) in [[str(n), f"{overrides[0]},{overrides[1]}"] for n in range(4)], name
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
    assert_jobs_completed(proc, sweep, RUNS)
    (sweep / "stdout.txt").write_text(proc.stdout)
    return sweep


RUNS = ["0_optimizer.lr=0.001", "1_optimizer.lr=0.03"]  # the real sweep's job folders


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
        assert cells["optimizer.lr"] == {RUNS[0]: "0.001", RUNS[1]: "0.03"}[row[0]] and cells["status"] == "success"
        for tag in ["val/acc", "val/acc_best", "test/acc", "val/loss"]:
            assert cells[tag] == pytest.approx(last_scalar(run_dir, tag)), tag
    assert report.plot_path.stat().st_size > 0 and report.csv_path.read_text().count("\n") == 3


@pytest.mark.slow
def test_hparams_tab_lists_every_run_with_true_values_only(real_sweep):
    """The sweep folder is one TensorBoard root: the multiplexer finds one run (HParams session) per job, named
    by its lr; each has at most 30 hyperparameters, lr first and marked as differing; val/acc_best holds only
    the two real epoch-end points (no step-0 placeholder)."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    mux = EventMultiplexer().AddRunsFromDirectory(str(real_sweep))
    mux.Reload()
    sessions, experiments = {}, []
    for run, content in mux.PluginRunToTagToContent("hparams").items():
        for raw in content.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(raw)
            if data.HasField("session_start_info"):
                sessions[Path(run).parts[0]] = data.session_start_info.hparams
            if data.HasField("experiment"):
                experiments.append(data.experiment)
    assert sorted(sessions) == RUNS
    assert {run: hp["optimizer.lr"].number_value for run, hp in sessions.items()} == {RUNS[0]: 0.001, RUNS[1]: 0.03}
    assert all(hp["model.conv_impl"].string_value == "custom" and len(hp) <= 30 for hp in sessions.values())
    for experiment in experiments:
        assert [m.name.tag for m in experiment.metric_infos][0] == "val/acc_best"
        assert [h.name for h in experiment.hparam_infos if h.differs] == ["optimizer.lr"]
        names = [h.name for h in experiment.hparam_infos]
        assert names[0] == "optimizer.lr" and len(names) == len(set(names)) <= 30
    for run in RUNS:
        steps = [e.step for e in mux.Scalars(f"{run}/tensorboard", "val/acc_best")]
        assert len(steps) == 2 and 0 not in steps, steps  # one real point per epoch


@pytest.mark.slow
def test_a_sweep_ends_with_the_summary_block(real_sweep):
    stdout = (real_sweep / "stdout.txt").read_text()
    block = stdout[stdout.index("\nsweep: 2 runs in "):]
    assert "best:  " in block and "python -m cnnexp.report " in block and "tensorboard --logdir " in block
    assert "\x1b" not in stdout


@pytest.mark.slow
def test_pictures_are_logged_in_a_real_run(real_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(real_sweep / RUNS[0] / "tensorboard"), size_guidance={"images": 0, "histograms": 0})
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


SBATCH_CASES = [
    ([], ["--nodes=1", "--ntasks-per-node=1"]),
    # a 2-node DDP job (trainer=ddp trainer.num_nodes=2): one task per GPU on each node, srun starts them all
    (["hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=4", "hydra.launcher.gpus_per_node=4"],
     ["--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4"]),
]


@pytest.mark.parametrize("extra,expected", SBATCH_CASES)
def test_slurm_preset_renders_an_sbatch_script(tmp_path, monkeypatch, extra, expected):
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
    overrides = ["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}/sweep", "hydra.launcher.partition=gpu", *extra]
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
    for line in ["--partition=gpu", "--time=120", "--cpus-per-task=8", "--mem=32GB", "--job-name=cnnexp-train", *expected]:
        assert f"#SBATCH {line}\n" in script, script
    assert "\nsrun " in script  # srun starts nodes x tasks_per_node processes; Lightning reads SLURM's variables
    assert f"{tmp_path}/sweep/.submitit/" in script


# ---- Optuna ------------------------------------------------------------------------------------------

PARAMS = {"optimizer.lr", "data.batch_size", "model.net.layers.1.filters", "model.dropout"}


def optuna_trials(storage: str, study: str = "digits_optuna") -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=storage).trials


@pytest.mark.parametrize(
    "extra",
    [["model=keras_cnn"], ["model=tiny_cnn"], ["model=keras_cnn_dropout", "hydra/launcher=joblib"], ["hydra/launcher=slurm"],
     ["hydra/sweeper/pruner=hyperband"], ["hydra/sweeper/pruner=none"]],
)
def test_hparams_search_config_composes(extra):
    """The search space's keys exist in the composed config (lecture and tiny model), with any launcher; the
    sweeper is cnnexp's, and the pruning callback gets the sweeper's pruner."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    import cnnexp.conf  # noqa: F401

    with initialize_config_module("cnnexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["+hparams_search=digits_optuna", *extra], return_hydra_config=True)
    model = cfg.hydra.runtime.choices.model
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.cnnexp_sweepers.optuna_sweeper.CnnexpOptunaSweeper"
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/acc_best"
    assert sweeper.storage == "sqlite:///outputs/optuna/digits.db" and sweeper.study_name == "digits_optuna"
    assert sweeper.max_failure_rate == 1.0 and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert set(sweeper.params) == PARAMS
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", (model, key)
    assert cfg.model.net.layers[1]._target_ == "cnnexp.layers.Conv2D"
    pruner = {"hydra/sweeper/pruner=hyperband": "HyperbandPruner", "hydra/sweeper/pruner=none": "NopPruner"}
    expected = pruner.get(extra[0], "MedianPruner")
    assert sweeper.pruner._target_ == f"optuna.pruners.{expected}"
    assert cfg.callbacks.optuna_pruning.monitor == "val/acc"
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)  # what a job has, for ${hydra:sweeper.pruner}
    try:
        assert type(instantiate(cfg.callbacks.optuna_pruning).pruner).__name__ == expected
    finally:
        HydraConfig.instance().cfg = None  # no Hydra job left behind for later tests


@pytest.mark.slow
def test_optuna_search_returns_a_value_and_resumes(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path}/outputs/optuna/digits.db"  # the default storage, relative to the cwd
    for call, expected in [(1, 2), (2, 4)]:
        sweep = tmp_path / "multirun" / f"search{call}"
        proc = cnnexp(tmp_path, "+hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", *FAST, f"hydra.sweep.dir={sweep}")
        results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
        assert results["best_value"] == max(t.value for t in optuna_trials(storage))
        assert set(results["best_params"]) == PARAMS and results["trials"]["complete"] == expected
        trials = optuna_trials(storage)
        assert len(trials) == expected
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        names = sorted(job_overrides(sweep))
        assert len(names) == 2 and all(name.split("_", 1)[1].startswith("optimizer.lr=") for name in names)
        assert f"study: digits_optuna, {expected} trials: {expected} complete" in proc.stdout
        assert "alembic" not in proc.stdout + proc.stderr and "\x1b" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_optuna_failed_trials_are_recorded_and_the_search_goes_on(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path}/nested/folder/failing.db"  # the folder is created by the search
    cnnexp(
        tmp_path, "+hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=3",
        f"hydra.sweeper.storage={storage}", "model.net.layers.1.kernel_size=choice(3,20)",
        "model.net.layers.1.padding=valid", "data.image_size=null", *FAST, f"hydra.sweep.dir={tmp_path}/multirun/failing",
    )  # a 20x20 'valid' kernel does not fit an 8x8 digit (not upsampled): ShapeError, the job returns NaN
    trials = optuna_trials(storage)
    assert len(trials) == 3
    states = {t.number: (t.params["model.net.layers.1.kernel_size"], t.state) for t in trials}
    assert {k for k, _ in states.values()} == {3, 20}, f"seed 3 should sample both kernel sizes: {states}"
    for kernel, state in states.values():
        assert state == (optuna.trial.TrialState.FAIL if kernel == 20 else optuna.trial.TrialState.COMPLETE)
    assert all(not math.isnan(t.value) for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/outputs/optuna/new.db", "journal:{tmp}/outputs/optuna/new.journal"])
def test_two_searches_started_together_share_one_new_study(tmp_path, storage):
    """Two shells (or SLURM array tasks) start a search on a study that does not exist yet: both finish."""
    import optuna

    storage = storage.format(tmp=tmp_path)
    procs = [
        subprocess.Popen(
            cnnexp_command("+hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}",
                           *FAST, f"hydra.sweep.dir={tmp_path}/multirun/worker{i}"),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    from cnnexp.sweepers.optuna_storage import open_storage

    trials = optuna.load_study(study_name="digits_optuna", storage=open_storage(storage)).trials
    assert len(trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
