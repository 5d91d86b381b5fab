"""`cnnexp::conv2d_max_pool`: the conv + pool op gives the unfused pair's output and gradients, on every path
(compiled kernel and each register tile, the PyTorch fallback; gradients from the pooled gradient or the scattered
one), with the pool's tie and NaN rules; its custom ops register like the others."""

from __future__ import annotations

import importlib

import pytest
import torch

from cnnexp.functional import conv2d, conv2d_max_pool, grid_direct, kernels, max_pool2d
from cnnexp.functional.geometry import conv_geometry

from .kernels_built import require_kernels

conv_pool = importlib.import_module("cnnexp.functional.conv_pool")

# (N, C_in, H, W, C_out, pool, conv padding, dilation)
CASES = [
    (2, 3, 8, 8, 16, 2, "same", 1),  # the lecture's first pair
    (3, 5, 7, 9, 5, 2, "same", 1),  # odd sizes: a dropped row and column; fewer channels than a vector
    (2, 16, 12, 10, 32, (3, 2), "valid", 1),  # a non-square pool
    (1, 4, 9, 9, 20, 2, 1, 2),  # dilation; a vector of channels and a remainder
]
IDS = ["lecture", "odd", "pool3x2", "dilated"]


def operands(n, c_in, h, w, c_out, zero_weight=False):
    """Channels-last x, weight and bias with values on a coarse grid, so that pool windows hold ties."""
    gen = torch.Generator().manual_seed(0)
    x = ((torch.randn(n, c_in, h, w, generator=gen) * 2).round() / 2).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c_out, c_in, 3, 3, generator=gen) * 2).round() / 4
    bias = (torch.randn(c_out, generator=gen) * 2).round() / 2
    if zero_weight:  # every output of a channel ties: the whole gradient must go to each window's first tap
        weight.zero_()
    return [t.requires_grad_() for t in (x, weight, bias)]


def fused_and_unfused(x, weight, bias, pool, padding, dilation, relu=False):
    """(output, dL/dx, dL/dW, dL/db) of the fused op and of `max_pool2d(conv2d(...))` (then `torch.relu` with
    `relu`), for one upstream gradient."""
    activation = torch.relu if relu else (lambda y: y)
    results = []
    for fn in (lambda: conv2d_max_pool(x, weight, bias, padding, dilation, pool, relu),
               lambda: activation(max_pool2d(conv2d(x, weight, bias, padding=padding, dilation=dilation), pool))):
        y = fn()
        upstream = torch.linspace(-1, 1, y.numel()).view_as(y)
        results.append((y.detach(), *torch.autograd.grad(y, (x, weight, bias), upstream)))
    return results


def assert_same(fused, unfused) -> None:
    """Output and dL/dx, dL/dW exactly; dL/db sums the pooled gradient instead of the full map (rounding only)."""
    for got, want in zip(fused[:3], unfused[:3]):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(fused[3], unfused[3], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("native", [True, False], ids=["kernel", "pytorch"])
@pytest.mark.parametrize("zero_weight", [False, True], ids=["rounded", "all-ties"])
@pytest.mark.parametrize(("n", "c_in", "h", "w", "c_out", "pool", "padding", "dilation"), CASES, ids=IDS)
def test_conv_pool_is_the_conv_then_the_pool(n, c_in, h, w, c_out, pool, padding, dilation, zero_weight, native,
                                             relu):
    if native:
        require_kernels()
    x, weight, bias = operands(n, c_in, h, w, c_out, zero_weight)
    if native:
        fused, unfused = fused_and_unfused(x, weight, bias, pool, padding, dilation, relu)
    else:
        with kernels.disabled():
            fused, unfused = fused_and_unfused(x, weight, bias, pool, padding, dilation, relu)
    assert fused[0].is_contiguous(memory_format=torch.channels_last)
    assert_same(fused, unfused)
    if zero_weight:  # ties everywhere: only each window's first tap has a gradient, so dL/dW sums those taps
        assert fused[2].abs().sum() > 0
    if relu:  # rounded values: ReLU clips some maxima to exactly zero, and those pass no gradient
        assert (fused[0] == 0).any() and (fused[0] > 0).any()


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
def test_nan_wins_the_window_and_takes_its_gradient(relu):
    """A NaN input makes the outputs it reaches NaN (NaN wins a window, and ReLU keeps it) and the first NaN tap
    gets the gradient, as max_pool2d's and relu's backward give it."""
    require_kernels()
    x, weight, bias = operands(2, 3, 8, 8, 16)
    with torch.no_grad():
        x[0, 1, 2, 5] = float("nan")
    fused, unfused = fused_and_unfused(x, weight, bias, 2, "same", 1, relu)
    assert fused[0].isnan().any() and not fused[0].isnan().all()
    for got, want in zip(fused[:3], unfused[:3]):
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)


def test_every_register_tile_pools_its_own_conv_output():
    """Each tile variant's fused kernel gives exactly the pool of that tile's conv, values and arg-max taps."""
    require_kernels()
    x, weight, bias = (t.detach() for t in operands(2, 3, 9, 10, 32))
    g = conv_geometry(x, weight, bias, 1, "same", 1)
    ran = 0
    for tile in range(len(kernels.direct_tiles("conv"))):
        try:
            full = grid_direct.forward(x, weight, bias, g, tile=tile)
        except ValueError:  # this tile cannot run 32 channels here
            continue
        y, idx = grid_direct.forward_pool(x, weight, bias, g, (2, 2), tile=tile)
        want_y, want_idx = kernels.max_pool_argmax(full, (2, 2))
        torch.testing.assert_close(y, want_y, rtol=0, atol=0)
        assert torch.equal(idx, want_idx)
        ran += 1
    assert ran >= 2


def test_pooled_gradients_are_the_scattered_gradients_on_every_tile():
    """The kernel's gradients from the pooled gradient and its arg-max taps (G never stored) equal, bit for bit,
    the same tile's gradients of the scattered G, with the dropped last row and column getting zeros."""
    require_kernels()
    x, weight, bias = (t.detach() for t in operands(2, 16, 9, 11, 32))
    g = conv_geometry(x, weight, bias, 1, "same", 1)
    _, idx = grid_direct.forward_pool(x, weight, bias, g, (2, 2))
    grad = torch.randn(2, 32, 4, 5).contiguous(memory_format=torch.channels_last)
    scattered = kernels.max_pool_scatter(grad, idx, (9, 11), (2, 2))
    assert grid_direct.pooled_usable(grad, idx)
    ran = {"conv": 0, "weight_grad": 0}
    for table, compute in (("conv", lambda gr, **kw: grid_direct.input_grad(gr, weight, (9, 11), g, **kw)),
                           ("weight_grad", lambda gr, **kw: grid_direct.weight_grad(x, gr, g, **kw))):
        for tile in range(len(kernels.direct_tiles(table))):
            try:
                want = compute(scattered, tile=tile)
            except ValueError:  # this tile cannot run these channels
                continue
            torch.testing.assert_close(compute(grad, tile=tile, idx=idx, pool=(2, 2)), want, rtol=0, atol=0)
            ran[table] += 1
    assert min(ran.values()) >= 2


def test_the_first_layer_needs_only_the_weight_and_bias_gradients():
    """x without a gradient (the images): dL/dW and dL/db alone, as the unfused pair gives them."""
    require_kernels()
    x, weight, bias = operands(2, 3, 8, 8, 16)
    x.requires_grad_(False)
    got, want = (torch.autograd.grad(fn().sum(), (weight, bias))
                 for fn in (lambda: conv2d_max_pool(x, weight, bias, "same", 1, 2),
                            lambda: max_pool2d(conv2d(x, weight, bias, padding="same"), 2)))
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want[1], rtol=1e-6, atol=1e-6)


def registered_op_path(monkeypatch):
    """Within the test, conv2d_max_pool goes through the registered ops (`eager_fast_path` says no)."""
    monkeypatch.setattr(conv_pool, "eager_fast_path", lambda *tensors: False)


@pytest.mark.parametrize("x_grad", [True, False], ids=["x-grad", "images"])
@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize(("n", "c_in", "h", "w", "c_out", "pool", "padding", "dilation"), CASES, ids=IDS)
def test_the_eager_path_gives_the_registered_ops_results(n, c_in, h, w, c_out, pool, padding, dilation, relu, x_grad,
                                                         monkeypatch):
    """The eager fast path (`_EagerConvPool`: the CPU kernels without the dispatcher, x's grid kept for the weight
    gradient) and the registered ops give the same output and gradients, bit for bit."""
    require_kernels()
    x, weight, bias = operands(n, c_in, h, w, c_out)
    x.requires_grad_(x_grad)
    inputs = (x, weight, bias) if x_grad else (weight, bias)
    results = []
    for eager in (True, False):
        if not eager:
            registered_op_path(monkeypatch)
        y = conv2d_max_pool(x, weight, bias, padding, dilation, pool, relu)
        assert ("_EagerConvPool" in type(y.grad_fn).__name__) == eager
        upstream = torch.linspace(-1, 1, y.numel()).view_as(y)
        results.append((y.detach(), *torch.autograd.grad(y, inputs, upstream)))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_the_eager_backward_reuses_the_forward_grid(monkeypatch):
    """The fast path's weight gradient reads the grid its forward laid x out on: the backward lays out nothing of x
    (the registered ops' backward builds it again), and what it saved is that grid, of which x is a view."""
    require_kernels()
    x, weight, bias = operands(2, 16, 8, 8, 32)
    laid_out = []
    to_grid = kernels.to_grid
    monkeypatch.setattr(kernels, "to_grid", lambda t, *a, **kw: laid_out.append(t.shape) or to_grid(t, *a, **kw))
    counts = []
    for eager in (True, False):
        if not eager:
            registered_op_path(monkeypatch)
        y = conv2d_max_pool(x, weight, bias, "same", 1, 2, True)
        if eager:
            grid = y.grad_fn.saved_tensors[0]
            g = conv_geometry(x, weight, bias, 1, "same", 1)
            assert torch.equal(grid, grid_direct.x_grid(x.detach(), g))
            seen = grid_direct.x_from_grid(grid, tuple(x.shape), g)
            assert torch.equal(seen, x.detach())
            assert seen.untyped_storage().data_ptr() == grid.untyped_storage().data_ptr()
        laid_out.clear()
        y.sum().backward()
        counts.append(laid_out.count(x.shape))
    assert counts == [0, 1]


def test_the_registered_op_runs_where_the_dispatcher_is_watched():
    """Where something watches or transforms the dispatcher (a dispatch mode here; the profiler, torch.compile,
    torch.func alike) the fused conv goes through its registered op, so that it sees `cnnexp::conv2d_max_pool`."""
    from torch.utils._python_dispatch import TorchDispatchMode

    require_kernels()

    class Names(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    x, weight, bias = operands(2, 3, 8, 8, 16)
    assert conv_pool.eager_fast_path(x, weight, bias)
    with Names() as names:
        assert not conv_pool.eager_fast_path(x, weight, bias)
        conv2d_max_pool(x, weight, bias, "same", 1, 2, True).sum().backward()
    assert {"cnnexp.conv2d_max_pool.default", "cnnexp.max_pool_conv2d_weight_grad.default"} <= names.seen
    with torch.profiler.profile():
        assert not conv_pool.eager_fast_path(x, weight, bias)
    assert not conv_pool.eager_fast_path(x.double(), weight.double(), bias.double())


def test_arg_max_bytes_name_the_first_maximum_and_scatter_back():
    """The arg-max byte of each window is the row-major index of its first maximum, and the scatter puts the
    gradient there (zeros on the dropped last row); with ReLU a maximum <= 0 becomes 0 with the byte CLIPPED,
    which takes no gradient, and the bias gradient skips it."""
    require_kernels()
    y = torch.tensor([[1.0, 3.0, 3.0, 0.0, -1.0, -2.0], [3.0, 2.0, 5.0, 5.0, -0.5, -3.0],
                      [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]]).view(1, 1, 3, 6)
    y = y.contiguous(memory_format=torch.channels_last)
    pooled, idx = kernels.max_pool_argmax(y, (2, 2))
    assert pooled.flatten().tolist() == [3.0, 5.0, -0.5] and idx.flatten().tolist() == [1, 2, 2]
    grad_out = torch.tensor([10.0, 20.0, 30.0]).view(1, 1, 1, 3)
    grad = kernels.max_pool_scatter(grad_out, idx, (3, 6), (2, 2))
    assert grad[0, 0].tolist() == [[0, 10, 0, 0, 0, 0], [0, 0, 20, 0, 30, 0], [0] * 6]
    pooled, idx = kernels.max_pool_argmax(y, (2, 2), relu=True)
    assert pooled.flatten().tolist() == [3.0, 5.0, 0.0] and idx.flatten().tolist() == [1, 2, conv_pool.CLIPPED]
    assert kernels.max_pool_scatter(grad_out, idx, (3, 6), (2, 2))[0, 0, :, 4:].abs().sum() == 0
    assert kernels.pooled_bias_grad(grad_out.contiguous(memory_format=torch.channels_last), idx).tolist() == [30.0]


def test_a_pool_larger_than_the_conv_output_and_mixed_dtypes_are_refused():
    x, weight, bias = operands(1, 3, 4, 4, 8)
    with pytest.raises(ValueError, match="cannot pool the conv's"):
        conv2d_max_pool(x, weight, bias, "valid", 1, 3)
    with pytest.raises(ValueError, match="dtype"):
        conv2d_max_pool(x.double(), weight, bias, "same", 1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_custom_ops_schema_fake_and_autograd_registration(dtype):
    x, weight, bias = (t.detach().to(dtype) for t in operands(2, 3, 7, 9, 5))
    x = x.contiguous(memory_format=torch.channels_last)
    args = [1, 1], [1, 1, 1, 1], [1, 1], [2, 2]
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(conv_pool.conv2d_max_pool_op, (x, weight, bias, *args), test_utils=utils)
    grads = tuple(t.clone().requires_grad_() for t in (x, weight, bias))
    torch.library.opcheck(conv_pool.conv2d_max_pool_op, (*grads, *args), test_utils=utils)
    torch.library.opcheck(conv_pool.conv2d_max_pool_op, (*grads, *args, True), test_utils=utils)
    y, idx = conv_pool.conv2d_max_pool_op(x, weight, bias, *args)
    grad = torch.randn_like(y)
    for op, portable, operand, size in ((conv_pool.pooled_input_grad_op, conv_pool._pooled_input_grad_portable,
                                         weight, [7, 9]),
                                        (conv_pool.pooled_weight_grad_op, conv_pool._pooled_weight_grad_portable, x,
                                         [3, 3])):
        torch.library.opcheck(op, (grad, idx, operand, size, *args), test_utils=utils)
        # the CUDA kernel (PyTorch ops on any device) gives the CPU kernel's gradient, to rounding
        torch.testing.assert_close(portable(grad, idx, operand, size, *args), op(grad, idx, operand, size, *args))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_the_pytorch_path_with_the_cpu_results():
    x, weight, bias = operands(3, 5, 7, 9, 5)
    cpu = fused_and_unfused(x, weight, bias, 2, "same", 1)[0]
    on_cuda = [t.detach().cuda().requires_grad_() for t in (x, weight, bias)]
    cuda = fused_and_unfused(*on_cuda, 2, "same", 1)
    for got, want in zip(cuda[0], cpu):  # another conv path (the PyTorch one): the same up to float rounding
        torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)
    assert_same(cuda[0], cuda[1])
