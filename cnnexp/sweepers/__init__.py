"""Helpers for Hydra sweeps (see docs/sweeps.md).

`callbacks.py` holds Hydra callbacks (`hydra.callbacks.<name>._target_`) that the hparams_search configs attach:
they make hydra-optuna-sweeper 1.3.0 record a NaN job as a failed trial instead of aborting, and create the
folder of a sqlite storage. They are Hydra callbacks rather than a sweeper subclass because Hydra only
instantiates sweepers that live in the `hydra_plugins` namespace package.
"""
