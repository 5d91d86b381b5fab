"""Matplotlib figures for TensorBoard: a confusion matrix and a captioned image grid.

matplotlib is imported inside the functions (it is slow to import), and figures are built with
`matplotlib.figure.Figure` directly, so no GUI backend or pyplot state is involved.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_matrix_figure(counts: Tensor, class_names: Sequence[str], title: str = "confusion matrix") -> Figure:
    """Draw a confusion matrix: rows are true classes, columns predicted ones, cells show the counts.

    Colours are the row-normalised rates (recall per class), so rare classes stay visible.

    Shape:
        counts: `(K, K)` integer counts with `K == len(class_names)`.
    """
    from matplotlib.figure import Figure

    k = counts.shape[0]
    counts = counts.detach().cpu().float()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)  # (K, K)
    side = min(2.0 + 0.45 * k, 20.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=80)
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=list(class_names), rotation=45 if k > 5 else 0, ha="right" if k > 5 else "center")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (accuracy {counts.diag().sum() / counts.sum().clamp_min(1):.3f})")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig


def image_grid_figure(images: Tensor, titles: Sequence[str], ncols: int | None = None) -> Figure:
    """Draw images on a grid, each with a caption (e.g. "true: 3 / pred: 8").

    Shape:
        images: `(N, C, H, W)` floats in [0, 1] with C = 1 (gray) or 3 (RGB); `len(titles) == N`.
    """
    from matplotlib.figure import Figure

    n = images.shape[0]
    ncols = min(n, ncols or math.ceil(math.sqrt(n))) or 1
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(2.0 * ncols, 2.2 * nrows), dpi=80)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i].detach().cpu().float()  # (C, H, W)
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(titles[i], fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.45 / (2.2 * nrows), hspace=0.45, wspace=0.1)
    return fig
