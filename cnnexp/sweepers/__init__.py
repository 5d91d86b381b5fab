"""Hyperparameter sweeps (see docs/sweeps.md).

- `naming.py`: sweep job folders named from their swept values (`${cnnexp.job_dir:}`);
- `optuna_space.py`, `optuna_storage.py`, `optuna_sweeper.py`: cnnexp's Optuna (>= 4) sweeper, the Hydra plugin
  `hydra/sweeper=cnnexp_optuna` (registered from `hydra_plugins/cnnexp_sweepers`);
- `pruning.py`: the Lightning callback that reports each epoch to the job's Optuna trial and stops it when pruned;
- `summary.py`: the block printed at the end of every multirun.
"""
