"""Lightning's TensorBoardLogger with an honest HParams tab and a custom-scalars layout.

Lightning's `log_hyperparams(params, {metric: 0})` writes the metric as a scalar at step 0 so that the HParams
plugin has a column for it; that fake point stretches the chart's axis and stands in for runs that never logged
the metric. Here the HParams plugin's three summaries are written directly (TensorBoard's own
`tensorboard.plugins.hparams.summary`):

- the experiment (once per run): the hyperparameter names, the overridden ones marked `differs` (TensorBoard
  sorts and ticks those first), and the metric names (`val/acc_best`, ...) with no value;
- the session start: this run's values;
- the session end, at `finalize(status)`: SUCCESS, or FAILURE for a run that failed (the HParams tab's status
  filter shows it; its metric cells stay empty instead of 0.0).

The metric columns take their values from the real scalars the run logs under the same tags. A custom-scalars
layout puts train and val loss on one chart and train and val accuracy on another (the Custom Scalars tab).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

HPARAMS_METRICS = ("val/acc_best", "val/acc", "val/loss", "test/acc", "train/loss")
# {category: {chart title: ["Multiline", [tag regex, ...]]}}: the layout torch's add_custom_scalars takes
LAYOUT = {
    "train vs val": {
        "loss: train/loss and val/loss": ["Multiline", [r"^train/loss$", r"^val/loss$"]],
        "accuracy: train/acc and val/acc": ["Multiline", [r"^train/acc$", r"^val/acc$"]],
    }
}


def _summary(tag: str, **plugin_data: Any) -> Any:
    """A `Summary` holding one HParams plugin message (`experiment=`, `session_start_info=` or `session_end_info=`)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData(**plugin_data)
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def hparams_summaries(hparams: dict[str, Any], differs: Sequence[str], metrics: Sequence[str]) -> tuple[Any, Any]:
    """The experiment and session-start summaries of the HParams plugin (protobuf `Summary` messages).

    Args:
        hparams: `{name: bool | int | float | str}` in display order.
        differs: the names marked as differing between runs (sorted and shown first by TensorBoard).
        metrics: the scalar tags shown as metric columns.
    """
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    kinds = {bool: api_pb2.DATA_TYPE_BOOL, str: api_pb2.DATA_TYPE_STRING}
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=name, type=kinds.get(type(value), api_pb2.DATA_TYPE_FLOAT64), differs=name in differs)
            for name, value in hparams.items()
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
    )
    start = plugin_data_pb2.SessionStartInfo()
    for name, value in hparams.items():
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = value
        else:
            start.hparams[name].string_value = str(value)
    return (_summary(metadata.EXPERIMENT_TAG, experiment=experiment),
            _summary(metadata.SESSION_START_INFO_TAG, session_start_info=start))


def session_end_summary(status: str) -> Any:
    """The session-end summary: STATUS_SUCCESS for `status == "success"`, else STATUS_FAILURE."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    code = api_pb2.STATUS_SUCCESS if status == "success" else api_pb2.STATUS_FAILURE
    return _summary(metadata.SESSION_END_INFO_TAG, session_end_info=plugin_data_pb2.SessionEndInfo(status=code))


class TensorBoardLogger(LightningTensorBoardLogger):
    """`lightning.pytorch.loggers.TensorBoardLogger` whose HParams hold true values only (see the module doc).

    Args:
        hparams_metrics: the scalar tags shown as the HParams tab's metric columns.
        custom_scalars: a custom-scalars layout written once per run (None: none).
        **kwargs: Lightning's TensorBoardLogger arguments (`save_dir`, `name`, `version`, `log_graph`, ...).
    """

    def __init__(self, *args: Any, hparams_metrics: Sequence[str] = HPARAMS_METRICS,
                 custom_scalars: dict[str, Any] | None = LAYOUT, **kwargs: Any) -> None:
        kwargs.setdefault("default_hp_metric", False)  # no -1 placeholder either
        super().__init__(*args, **kwargs)
        self.hparams_metrics = list(hparams_metrics)
        self.custom_scalars = custom_scalars
        self._session_open = False

    @rank_zero_only
    def log_hyperparams(self, params: Any, metrics: Any = None, step: int | None = None,
                        differs: Sequence[str] = ()) -> None:
        """Save `hparams.yaml` and write the HParams experiment and session start (metric values: none)."""
        super().log_hyperparams(params)  # metrics dropped on purpose: no fake point
        hparams = dict(params)
        writer = self.experiment._get_file_writer()
        for pb in hparams_summaries(hparams, differs, self.hparams_metrics):
            writer.add_summary(pb)
        if self.custom_scalars:
            self.experiment.add_custom_scalars(self.custom_scalars)
        self._session_open = True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write the session end (first call only: TensorBoard keeps the first) and close the event files."""
        if self._session_open and self._experiment is not None:
            self.experiment._get_file_writer().add_summary(session_end_summary(status))
            self._session_open = False
        super().finalize(status)
