"""train(cfg): seed, build the data, the model, the callbacks, the loggers and the trainer from the config; fit; test.

The heavy imports (lightning, hydra's instantiate) happen inside the functions, so that `python -m cnnexp --help`
and `--cfg job` stay fast.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from cnnexp import provenance
from cnnexp.checkpoints import resolve_ckpt_path, resume_errors
from cnnexp.conf.sources import check_targets_import
from cnnexp.cpu_memory import apply_cpu_settings
from cnnexp.config_checks import check_arguments, check_config
from cnnexp.errors import ConfigError
from cnnexp.run_folders import RESOLVED_CONFIG

log = logging.getLogger(__name__)

EXIT_SIGTERM = 128 + 15  # what a shell reports for a process killed by SIGTERM; schedulers read it as a failure


def instantiate_dict(node: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a `{name: {_target_: ...}}` group (callbacks, logger); null entries are skipped."""
    from hydra.utils import instantiate

    if not node:
        return []
    if not isinstance(node, DictConfig):
        raise ConfigError(f"expected a mapping of name -> {{_target_: ...}}, got {node!r}")
    return [instantiate(conf) for conf in node.values() if conf is not None and "_target_" in conf]


def check_output_dir(cfg: DictConfig) -> None:
    """Refuse a `paths.output_dir` that is another run's folder (e.g. the absolute path saved in a run's
    config_resolved.yaml, composed again with `--config-path <run>`): a run never writes into another run's folder."""
    from cnnexp.run_folders import is_run_dir

    try:
        from hydra.core.hydra_config import HydraConfig

        current = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
        output_dir = cfg.paths.output_dir
    except Exception:  # no paths group, or an interpolation that cannot resolve outside Hydra
        return
    if current and Path(output_dir).resolve() != Path(current).resolve() and is_run_dir(output_dir):
        raise ConfigError(f"paths.output_dir={output_dir} is the folder of another run; a run never writes into "
                          f"another run's folder. Fix: repeat that run with `python -m cnnexp.rerun {output_dir}`.")


def check_data(datamodule: Any) -> None:
    """Find the data set's files before the model is built (a missing MNIST is named in seconds, not after the
    model); `prepare_data` downloads when the data module is told to. Only local rank 0 does it, as Lightning."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and hasattr(datamodule, "prepare_data"):
        datamodule.prepare_data()


def fill_data_shape(cfg: DictConfig, datamodule: Any) -> None:
    """Write the data's `(C, H, W)` and class count into `cfg.model.net` before the model is built."""
    if "net" not in cfg.model:
        return
    with open_dict(cfg):
        cfg.model.net.input_shape = list(datamodule.input_shape)
        cfg.model.net.num_classes = int(datamodule.num_classes)


def save_resolved_config(cfg: DictConfig, output_dir: str | os.PathLike) -> Path:
    """Save the fully resolved config (with the filled data shape) where `cnnexp.evaluate` finds it."""
    from cnnexp.atomic_write import atomic_write_text

    return atomic_write_text(Path(output_dir) / RESOLVED_CONFIG, OmegaConf.to_yaml(cfg, resolve=True))


def hyperparameters(cfg: DictConfig, model: Any) -> dict[str, Any]:
    """The values the HParams tab shows: the overridden keys first, then a curated set (`cnnexp.lit.hparams`)."""
    from cnnexp.lit.hparams import run_hparams

    return run_hparams(cfg, model)[0]


def log_hyperparameters(cfg: DictConfig, model: Any, loggers: list[Any]) -> None:
    """Log the concise hyperparameters once per logger, with no metric value (the real scalars follow).

    cnnexp's TensorBoardLogger also gets the overridden names (TensorBoard shows those columns first) and
    lists `optimized_metric` among its HParams metrics.
    """
    from cnnexp.lit.hparams import run_hparams
    from cnnexp.lit.tensorboard_logger import TensorBoardLogger

    hparams, overridden = run_hparams(cfg, model)
    metric = cfg.get("optimized_metric") or "val/acc_best"
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            if metric not in logger.hparams_metrics:
                logger.hparams_metrics.insert(0, metric)
            logger.log_hyperparams(hparams, differs=overridden)
        else:
            logger.log_hyperparams(hparams)


def log_graph(model: Any, loggers: list[Any]) -> None:
    """Draw the network in TensorBoard's Graphs tab (for loggers with `log_graph: true`), never failing the run.

    Lightning would trace the whole LightningModule at fit start and stop the run if tracing fails (a custom op
    that TorchScript cannot trace); here the net is traced once, and a failure is only a warning.
    """
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    example = getattr(model, "example_input_array", None)
    net = getattr(model, "net", model)
    for logger in loggers:
        if not (isinstance(logger, TensorBoardLogger) and getattr(logger, "_log_graph", False)):
            continue
        logger._log_graph = False  # Lightning must not trace again at fit start
        if example is None:
            log.warning("No example_input_array: the model graph is not drawn.")
            continue
        was_training = net.training
        try:
            net.eval()
            with torch.no_grad():
                logger.experiment.add_graph(net, example)
        except Exception as error:  # noqa: BLE001 - the graph is a nicety, the run goes on
            log.warning("Could not draw the model graph in TensorBoard (%s: %s).", type(error).__name__, error)
        finally:
            net.train(was_training)


def best_checkpoint(trainer: Any) -> str | None:
    """The best checkpoint ModelCheckpoint kept, or None (no checkpointing, fast_dev_run, no validation)."""
    callback = trainer.checkpoint_callback
    path = getattr(callback, "best_model_path", "") if callback is not None else ""
    return path if path and Path(path).is_file() else None


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()}


def _display(path: str | os.PathLike) -> str:
    """A run folder relative to the working directory when it is inside it (shorter to read and copy)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def quiet_library_output() -> None:
    """One copy of each message: under Hydra the root logger prints (and writes the run's log file), so drop
    lightning's own console handler; hide the TorchScript tracer's warnings from drawing the model graph."""
    import warnings

    import torch

    if logging.getLogger().handlers:
        for handler in list(logging.getLogger("lightning").handlers):
            logging.getLogger("lightning").removeHandler(handler)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)


def interrupted_exit_status(stop: BaseException) -> int:
    """The exit status of a run stopped by `stop`: 143 (128 + SIGTERM) for SIGTERM, else its own code (Ctrl-C: 1)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(stop, SIGTERMException):
        return EXIT_SIGTERM
    code = getattr(stop, "code", 1)
    return code if isinstance(code, int) else 1


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test the model the config describes; return the final metrics.

    Steps: check the config (values, unknown arguments, the run folder; before lightning is imported); seed
    everything from `cfg.seed`; write `run.json` (`cnnexp.provenance`); build the data module and find its files;
    write its input shape and class count into `cfg.model.net`; pick the checkpoint to resume from (refused when
    it was trained with another model, optimizer or data); build the model and print its summary; build
    callbacks, loggers and trainer; save `config_resolved.yaml` in the run folder; fit; test the best checkpoint;
    rewrite `run.json` with the end time, status, exit status and metrics; print one line with the test
    accuracy and the run folder.

    Args:
        cfg: the composed config (`cnnexp/conf/config.yaml`); `cfg.paths.output_dir` is the run folder.

    Returns:
        Every metric the run logged last (`train/loss`, `val/acc`, `val/acc_best`, `test/acc`, ...) as floats.

    Raises:
        CnnexpError: a user error (bad config value, missing data, NaN loss, ...). Any error is logged with its
            traceback to the run's log file only (under Hydra) before it propagates.
        SystemExit(143): the run was stopped by SIGTERM (after `interrupted.ckpt` was saved).
    """
    loggers: list[Any] = []
    status, exit_status, info, metrics = "failed", 1, None, {}
    try:
        check_config(cfg)  # first: a bad value (seed=abc included) is named before lightning is imported
        check_targets_import(cfg)  # an unknown _target_ is named with the config file that set it
        check_arguments(cfg)
        check_output_dir(cfg)
        import lightning as L
        from hydra.utils import instantiate
        from lightning.fabric.utilities.rank_zero import rank_zero_only

        quiet_library_output()
        seed = L.seed_everything(cfg.seed, workers=True)
        apply_cpu_settings(cfg)
        output_dir = cfg.paths.output_dir
        if rank_zero_only.rank == 0:  # under DDP every process runs train(); one writes the files
            info = provenance.collect(cfg, seed)
            provenance.write(output_dir, info)

        log.info("Data: %s", cfg.data._target_)
        datamodule = instantiate(cfg.data)
        check_data(datamodule)
        fill_data_shape(cfg, datamodule)
        ckpt_path = resolve_ckpt_path(cfg) if cfg.get("train", True) else None  # before the model: a mismatch is named
        log.info("Model: %s", cfg.model._target_)
        model = instantiate(cfg.model)
        if hasattr(getattr(model, "net", None), "summary"):
            log.info("\n%s", model.net.summary())

        callbacks = instantiate_dict(cfg.get("callbacks"))
        loggers = instantiate_dict(cfg.get("logger"))
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        if trainer.is_global_zero:
            save_resolved_config(cfg, output_dir)
            if info is not None:
                provenance.log_to_tensorboard(info, loggers)
        log_hyperparameters(cfg, model, loggers)
        log_graph(model, loggers)

        if cfg.get("train", True):
            with resume_errors(ckpt_path):
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
            metrics.update(_floats(trainer.callback_metrics))
        if cfg.get("test", True):
            ckpt = best_checkpoint(trainer) if cfg.get("train", True) else resolve_ckpt_path(cfg)
            if ckpt is None:
                log.warning("No best checkpoint to test: testing the model's current weights.")
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
            metrics.update(_floats(trainer.callback_metrics))
        status, exit_status = "success", 0
    except Exception as error:
        from cnnexp.cli import EXIT_USER_ERROR, log_to_run_file, user_error_message

        message = user_error_message(error)
        exit_status = 1 if message is None else EXIT_USER_ERROR
        # the full traceback goes to the run's log file; the console gets one `error:` line (or the bug's traceback)
        log_to_run_file(f"The run failed: {message or 'a bug'}", error)
        raise
    except BaseException as stop:  # SIGTERM (Lightning's SIGTERMException), Ctrl-C (Lightning's sys.exit(1))
        status, exit_status = "interrupted", interrupted_exit_status(stop)
        if exit_status == EXIT_SIGTERM:
            log.error("Stopped by SIGTERM: exit status %d (resume with resume=true or resume=<this run folder>).",
                      EXIT_SIGTERM)
            raise SystemExit(EXIT_SIGTERM) from None  # Lightning's SIGTERMException would exit 0, as a success
        raise
    finally:
        for logger in loggers:
            logger.finalize(status)  # flush and close the event files (also after an error)
        if info is not None:
            try:
                provenance.write(output_dir, provenance.finish(info, status, exit_status, metrics))
            except OSError:  # a full disk: the error that caused it is the one to report
                pass

    if trainer.is_global_zero:
        name = "test/acc" if "test/acc" in metrics else "val/acc"
        print(f"{name}={metrics.get(name, math.nan):.4f}  run: {_display(output_dir)}", flush=True)
    return metrics
