"""The Hydra Sweeper plugin `hydra/sweeper=cnnexp_optuna` (config: cnnexp/conf/hydra/sweeper/cnnexp_optuna.yaml).

Hydra instantiates only sweepers defined in the `hydra_plugins` namespace package; the logic lives in
`cnnexp.sweepers.optuna_sweeper.OptunaSweeper` (see there).
"""

from cnnexp.sweepers.optuna_sweeper import OptunaSweeper


class CnnexpOptunaSweeper(OptunaSweeper):
    """Optuna (>= 4) ask/tell search with pruning and shared storages: `cnnexp.sweepers.optuna_sweeper`."""
