"""Optuna search with and without pruning, side by side: same trial count, same sampled trials, fresh studies.

    python scripts/optuna_pruning_benchmark.py --trials 10 --epochs 15 [--out outputs/bench/optuna_pruning.json]

Runs `python -m cnnexp +hparams_search=digits_optuna` once per pruner (none, median, hyperband by default),
all at the same time (so that they share the machine's load), each in its own sqlite study under a temporary
folder, with a seeded RandomSampler by default (its trials do not depend on earlier results, so every search
samples the same parameters and pruning only cuts epochs; `--sampler tpe` for the config's TPE). Prints the
wall time, the epochs run, the best val/acc_best and the trial states; writes them to JSON. Timings on a shared
machine are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from cnnexp.provenance import cpu_model


SAMPLERS = {
    "random": ["hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler", "~hydra.sweeper.sampler.n_startup_trials"],
    "tpe": [],
}


def start_search(pruner: str, trials: int, epochs: int, seed: int, sampler: str, workdir: Path) -> tuple:
    storage = f"sqlite:///{workdir}/{pruner}.db"
    command = [
        sys.executable, "-m", "cnnexp", "+hparams_search=digits_optuna", f"hydra/sweeper/pruner={pruner}",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweeper.storage={storage}",
        f"trainer.max_epochs={epochs}", "~callbacks.tensorboard_pictures", "logger.tensorboard.log_graph=false",
        f"hydra.sweep.dir={workdir}/{pruner}", *SAMPLERS[sampler],
    ]
    log = open(workdir / f"{pruner}.log", "w")
    return pruner, storage, time.perf_counter(), subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def wait_all(started: list[tuple]) -> dict[str, float]:
    """Each search's own wall time: poll them all, so that a slow first one does not inflate the others."""
    walls: dict[str, float] = {}
    while len(walls) < len(started):
        for pruner, _, start, proc in started:
            if pruner not in walls and proc.poll() is not None:
                walls[pruner] = time.perf_counter() - start
        time.sleep(0.5)
    return walls


def finish_search(pruner: str, storage: str, wall: float, proc: subprocess.Popen, workdir: Path) -> dict:
    if proc.returncode != 0:
        raise SystemExit(f"{pruner}: exit {proc.returncode}\n{(workdir / f'{pruner}.log').read_text()[-3000:]}")
    import optuna

    study = optuna.load_study(study_name="digits_optuna", storage=storage)
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise SystemExit(f"{pruner}: no trial completed\n{(workdir / f'{pruner}.log').read_text()[-3000:]}")
    states = {s.name.lower(): sum(t.state == s for t in study.trials) for s in optuna.trial.TrialState}
    epochs_run = sum(len(t.intermediate_values) for t in study.trials)
    return {"pruner": pruner, "wall_s": round(wall, 1), "best_val_acc_best": study.best_value,
            "epochs_run": epochs_run, "states": states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sampler", choices=sorted(SAMPLERS), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", nargs="+", default=["none", "median", "hyperband"])
    parser.add_argument("--out", default="outputs/bench/optuna_pruning.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        started = [start_search(p, args.trials, args.epochs, args.seed, args.sampler, Path(tmp)) for p in args.pruners]
        walls = wait_all(started)
        for pruner, storage, _, proc in started:
            rows.append(finish_search(pruner, storage, walls[pruner], proc, Path(tmp)))
            print(rows[-1], flush=True)
    base = rows[0]["wall_s"]
    print(f"\n{'pruner':10} {'wall s':>8} {'ratio':>6} {'best val/acc_best':>18} {'epochs run':>10}  states")
    for row in rows:
        print(f"{row['pruner']:10} {row['wall_s']:8.1f} {row['wall_s'] / base:6.2f} {row['best_val_acc_best']:18.4f} "
              f"{row['epochs_run']:10d}  {row['states']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "cpu": cpu_model(), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
