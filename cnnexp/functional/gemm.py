"""The one matrix product the custom convolution is built on: `a @ w.T + bias`.

On CPU in float32 it uses oneDNN's inner-product (matmul) primitive, `torch.ops.mkldnn._linear_pointwise`,
when PyTorch ships it: on the AMD EPYC this project benchmarks on, MKL's sgemm reaches ~40 GFLOP/s for
the tall-skinny shapes of a convolution (rows = pixels, 48-576 columns, 16-64 outputs) while oneDNN's
JIT kernels reach ~150. It is a plain matrix product, not a convolution primitive. Everywhere else
(CUDA, float64, builds without oneDNN, TorchScript tracing) it is `torch.addmm` / `torch.mm`.
"""

from __future__ import annotations

import torch


def _has_onednn_linear() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


ONEDNN_LINEAR = _has_onednn_linear()


def gemm(a: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`a @ w.T (+ bias)`.

    Shape:
        a: `(M, K)`; w: `(N, K)` (any strides; other than row/column-major ones are copied); bias: `(N,)` or None -> `(M, N)` contiguous.
    """
    if (ONEDNN_LINEAR and a.device.type == "cpu" and a.dtype == torch.float32 and w.dtype == torch.float32
            and not torch.jit.is_tracing()):  # TorchScript (TensorBoard's graph) cannot trace the oneDNN op
        # oneDNN takes row- or column-major operands as they are, but crawls on others (e.g. the stride-0
        # upstream gradient of `y.sum()`): give it a dense copy of those
        a, w = (t if t.is_contiguous() or t.t().is_contiguous() else t.contiguous() for t in (a, w))
        return torch.ops.mkldnn._linear_pointwise(a, w, bias, "none", [], "")
    return torch.addmm(bias, a, w.t()) if bias is not None else torch.mm(a, w.t())
