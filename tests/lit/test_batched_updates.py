"""BatchedUpdates: training metrics updated once per several steps end with the values per-step updates give."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MeanMetric

from cnnexp.lit.batched_updates import BatchedUpdates
from cnnexp.lit.classifier import accuracy_metrics


def steps(sizes: list[int], num_classes: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, num_classes, generator=g), torch.randint(0, num_classes, (n,), generator=g),
             torch.rand((), generator=g) * 3) for n in sizes]


@pytest.mark.parametrize("max_steps, max_elements", [(2, 1 << 20), (32, 50), (1, 1 << 20)])
def test_epoch_values_equal_per_step_updates_across_flush_boundaries(max_steps, max_elements):
    """Uneven batches, flushes inside the epoch (every 2 steps, or whenever 50 logits are gathered) and at its end:
    top-1 and top-5 accuracy and the batch-size weighted mean loss equal one update per step."""
    data = steps([16, 16, 8, 16, 5, 16, 3], num_classes=7)
    reference, reference_loss = accuracy_metrics(7), MeanMetric()
    for logits, y, loss in data:
        reference.update(logits, y)
        reference_loss.update(loss, weight=y.shape[0])
    batched = BatchedUpdates(accuracy_metrics(7), MeanMetric(), max_steps=max_steps, max_elements=max_elements)
    for logits, y, loss in data:
        batched.add(logits, y, loss)
    batched.flush()
    expected, got = reference.compute(), batched.metrics.compute()
    assert set(got) == {"acc", "acc_top5"}
    for name in expected:
        assert float(got[name]) == pytest.approx(float(expected[name]), abs=1e-7)
    assert float(batched.loss_mean.compute()) == pytest.approx(float(reference_loss.compute()), rel=1e-6)
    assert float(batched.loss_mean.compute()) != pytest.approx(float(torch.stack([s[2] for s in data]).mean()))


def test_updates_wait_for_a_full_group_or_a_flush():
    """Nothing reaches the metrics until max_steps steps are gathered (one update for all of them), and a flush with
    nothing gathered changes nothing."""
    batched = BatchedUpdates(accuracy_metrics(3), MeanMetric(), max_steps=3)
    data = steps([4, 4, 4, 4], num_classes=3)
    for logits, y, loss in data[:2]:
        batched.add(logits, y, loss)
    assert not batched.loss_mean.update_called
    batched.add(*data[2])
    assert batched.loss_mean._update_count == 1
    batched.add(*data[3])
    batched.flush()
    batched.flush()
    assert batched.loss_mean._update_count == 2
    assert float(batched.loss_mean.weight) == 16
