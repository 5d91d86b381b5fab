"""Run PyTorch's own OpInfo sample inputs (the ones its test suite checks its ops with) through cnnexp.functional.

Every CPU float64 sample of conv2d, max_pool2d, avg_pool2d and batch_norm is called on torch's op and on
cnnexp's with the same positional and keyword arguments (torch's names); outputs, gradients (for a random
upstream gradient, with respect to every input that requires grad) and batch_norm's updated running
statistics must agree.

Run as a script, in its own process: importing `torch.testing._internal` changes global torch state (it
freezes the cudnn flags, which a later `Trainer(deterministic=True)` then fails to set), so the test suite
must not import it in-process. Prints one JSON object {op: {"matched", "total", "failures"}}:

    python tests/functional/opinfo_harness.py                       # every sample of the four ops
    python tests/functional/opinfo_harness.py --step nn.functional.max_pool2d=10 --control
"""

from __future__ import annotations

import argparse
import json

import torch

from cnnexp import functional as cf
from cnnexp.functional.pooling import avg_pool2d
from cnnexp.functional.batch_norm import batch_norm

OPS = {
    "nn.functional.conv2d": cf.conv2d,
    "nn.functional.max_pool2d": cf.max_pool2d,
    "nn.functional.avg_pool2d": avg_pool2d,
    "nn.functional.batch_norm": batch_norm,
}


def _clone_args(sample) -> tuple[torch.Tensor, list, dict]:
    """Fresh leaves for one call (running statistics are updated in place, so each side gets its own)."""

    def fresh(a):
        return a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a

    return fresh(sample.input), [fresh(a) for a in sample.args], {k: fresh(v) for k, v in sample.kwargs.items()}


def _run(fn, sample, seed: int):
    """(outputs, grads of every grad-requiring input, tensors after the call) of fn on a fresh copy."""
    x, args, kwargs = _clone_args(sample)
    tensors = [t for t in [x, *args, *kwargs.values()] if isinstance(t, torch.Tensor)]
    out = fn(x, *args, **kwargs)
    outs = [o for o in (out if isinstance(out, tuple) else (out,))]
    leaves = [t for t in tensors if t.requires_grad]
    diff = [o for o in outs if o.requires_grad]
    grads = []
    if leaves and diff:
        gen = torch.Generator().manual_seed(seed)
        upstream = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in diff]
        grads = torch.autograd.grad(diff, leaves, upstream, allow_unused=True)
        grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, leaves)]
    return [o.detach() for o in outs], grads, [t.detach() for t in tensors]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        try:
            torch.testing.assert_close(u, v, rtol=1e-7, atol=1e-7, equal_nan=True)
        except AssertionError:
            return False
    return True


def count_matches(name: str, step: int = 1, ours=None) -> tuple[int, int, list[str]]:
    """(matching samples, samples run, descriptions of the mismatches) for OpInfo op `name` on CPU float64.

    Args:
        step: run every `step`-th sample only (1: all).
        ours: the function to check (default: cnnexp's, from `OPS`).
    """
    from torch.testing._internal.common_methods_invocations import op_db

    ours = OPS[name] if ours is None else ours
    matched = total = 0
    failures: list[str] = []
    for op in (o for o in op_db if o.name == name):
        samples = list(op.sample_inputs("cpu", torch.float64, requires_grad=True))
        for i, sample in list(enumerate(samples))[::step]:
            total += 1
            expected = _run(op.op, sample, seed=i)
            try:
                got = _run(ours, sample, seed=i)
            except Exception as e:  # noqa: BLE001 - a sample we cannot run counts as a mismatch
                failures.append(f"{op.variant_test_name or name}[{i}] {sample}: {type(e).__name__}: {e}")
                continue
            if all(_same(a, b) for a, b in zip(got, expected)):
                matched += 1
            else:
                failures.append(f"{op.variant_test_name or name}[{i}] {sample}: values differ")
    return matched, total, failures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="cnnexp.functional against PyTorch's OpInfo samples")
    p.add_argument("--step", action="append", default=[], metavar="OP=N", help="run every N-th sample of OP")
    p.add_argument("--control", action="store_true",
                   help="also count avg_pool2d perturbed by 1e-6 (must match nothing: the comparison can fail)")
    args = p.parse_args(argv)
    steps = {k: int(v) for k, v in (a.split("=", 1) for a in args.step)}
    result = {}
    for name in OPS:
        matched, total, failures = count_matches(name, steps.get(name, 1))
        result[name] = {"matched": matched, "total": total, "failures": failures[:10]}
    if args.control:
        def off_by_a_little(*a, **kw):
            return avg_pool2d(*a, **kw) * (1 + 1e-6)

        matched, total, failures = count_matches("nn.functional.avg_pool2d", ours=off_by_a_little)
        result["control"] = {"matched": matched, "total": total, "failures": failures[:1]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
