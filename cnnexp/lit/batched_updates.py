"""Training metrics updated once per several steps: the same epoch values, a fraction of the per-step cost."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric, MetricCollection


class BatchedUpdates:
    """Gathers the training steps' `(logits (N, K), targets (N,), loss ())` and applies them to the epoch's metrics
    in one update per `max_steps` steps (sooner when the gathered logits reach `max_elements`), and on `flush()`.

    A torchmetrics update inside a training loop is far dearer than in a microbenchmark (argument checks, state
    bookkeeping, a dozen small ops that run cold after the step's large kernels; docs/benchmarks.md has the
    times), and it was paid every step. The epoch's values do not change: accuracy counts and the batch-size weighted
    loss sum are sums over samples, whichever way the samples are grouped. Call `flush()` before reading the
    metrics (the epoch's end).
    """

    def __init__(self, metrics: MetricCollection, loss_mean: MeanMetric, max_steps: int = 32,
                 max_elements: int = 1 << 20) -> None:
        self.metrics, self.loss_mean = metrics, loss_mean
        self.max_steps, self.max_elements = max_steps, max_elements
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._elements = 0

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        """One step's detached logits `(N, K)`, targets `(N,)` and mean loss `()` (weighted by N)."""
        self._logits.append(logits)
        self._targets.append(targets)
        self._losses.append(loss)
        self._sizes.append(targets.shape[0])
        self._elements += logits.numel()
        if len(self._sizes) >= self.max_steps or self._elements >= self.max_elements:
            self.flush()

    def flush(self) -> None:
        """Apply the gathered steps to the metrics (nothing when none are gathered)."""
        if not self._sizes:
            return
        self.metrics.update(torch.cat(self._logits), torch.cat(self._targets))
        losses = torch.stack(self._losses)
        self.loss_mean.update(losses, weight=torch.tensor(self._sizes, dtype=losses.dtype, device=losses.device))
        self._logits, self._targets, self._losses, self._sizes, self._elements = [], [], [], [], 0
