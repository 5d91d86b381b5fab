"""The compiled kernels (kernels.py): that conv2d really uses the direct conv, its numbers, the build cache and the
fallbacks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cnnexp.functional import conv2d, conv2d_torch, grid_direct, kernels

from .kernels_built import require_kernels


@pytest.fixture
def fresh_library():
    """Forget the loaded library before and after the test (it is cached per process)."""
    kernels.library.cache_clear()
    yield
    kernels.library.cache_clear()


def _grads(conv, x, w, b, upstream, **kwargs):
    inputs = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    y = conv(*inputs, **kwargs)
    return (y, *torch.autograd.grad(y, inputs, upstream))


def _compare(x, w, b, rtol=1e-4, **kwargs):
    """Forward and all three gradients of conv2d against F.conv2d's, relative to the largest value."""
    y_ref = conv2d_torch(x, w, b, **kwargs)
    upstream = torch.randn_like(y_ref)
    for got, want in zip(_grads(conv2d, x, w, b, upstream, **kwargs), _grads(conv2d_torch, x, w, b, upstream, **kwargs)):
        torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * want.abs().max().item())


@pytest.fixture
def kernel_calls(monkeypatch):
    """Count the direct kernel's calls: {'conv': n, 'weight_grad': n} (`kernels.direct_conv`, `direct_weight_grad`)."""
    require_kernels()
    calls = {"conv": 0, "weight_grad": 0}
    for name, attr in (("conv", "direct_conv"), ("weight_grad", "direct_weight_grad")):
        original = getattr(kernels, attr)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(kernels, attr, spy)
    return calls


def test_cpu_float32_conv_runs_the_kernel_forward_and_backward(kernel_calls):
    x, w = torch.randn(2, 16, 9, 9, requires_grad=True), torch.randn(32, 16, 3, 3, requires_grad=True)
    y = conv2d(x, w, None, padding="same")
    assert kernel_calls == {"conv": 1, "weight_grad": 0}
    y.square().sum().backward()
    assert kernel_calls == {"conv": 2, "weight_grad": 1}  # dL/dx is a conv too
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_disabled_turns_off_every_op_called_in_the_block(kernel_calls):
    """`disabled()` covers the forward and the gradient ops that run inside the block; each op picks its own path
    (the gradients rebuild what they need), so a backward run after the block takes the kernel again."""
    x, w = torch.randn(2, 16, 9, 9, requires_grad=True), torch.randn(32, 16, 3, 3, requires_grad=True)
    with kernels.disabled():
        conv2d(x, w, None, padding="same").square().sum().backward()
        y = conv2d(x, w, None, padding="same")
    assert kernel_calls == {"conv": 0, "weight_grad": 0}
    y.square().sum().backward()  # after the block: the kernel for dL/dx (a conv) and dL/dW
    assert kernel_calls == {"conv": 1, "weight_grad": 1}


@pytest.mark.filterwarnings("ignore")
def test_float64_takes_the_torch_path_and_tracing_records_the_opaque_op(kernel_calls):
    x, w = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(8, 4, 3, 3, dtype=torch.float64)
    conv2d(x, w, None, padding="same")
    assert kernel_calls == {"conv": 0, "weight_grad": 0}
    traced = torch.jit.trace(lambda t: conv2d(t, w.float(), None, padding="same"), (x.float(),), check_trace=False)
    assert "cnnexp::conv2d" in str(traced.graph)  # one node: TorchScript never sees the kernel's pointers
    torch.testing.assert_close(traced(x.float() + 1), conv2d(x.float() + 1, w.float(), None, padding="same"))


@pytest.mark.parametrize(
    ("c_in", "c_out"),
    [(1, 16), (3, 16), (16, 32), (32, 64), (7, 33), (13, 48), (24, 17), (5, 5), (64, 8)],
    ids=lambda v: str(v),
)
def test_channel_counts_cover_every_tile_and_remainder(c_in, c_out):
    """1-3 input channels (the weight gradient's remainder tiles), 4-24 and 64 (full tiles), output channels
    that fill 1, 2 or 4 vectors and ones that end in a partial vector (5, 17, 33)."""
    require_kernels()
    gen = torch.Generator().manual_seed(c_in * 100 + c_out)
    x = torch.randn(3, c_in, 11, 10, generator=gen)
    _compare(x, torch.randn(c_out, c_in, 3, 3, generator=gen), torch.randn(c_out, generator=gen), padding="same")


@pytest.mark.parametrize("c_out", [16, 32, 64])
@pytest.mark.parametrize(
    ("kernel", "padding", "dilation"),
    [((5, 5), "same", 1), ((2, 4), (1, 2), 2), ((1, 1), 0, 1), ((3, 3), "same", (1, 2)), ((1, 3), "same", 1)],
)
def test_kernels_paddings_dilations(kernel, padding, dilation, c_out):
    """Kernel rows of 3 consecutive taps take the kernel's row-of-three tiles, all others one tap at a time."""
    require_kernels()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 13, 12, generator=gen)
    _compare(x, torch.randn(c_out, 8, *kernel, generator=gen), torch.randn(c_out, generator=gen), padding=padding,
             dilation=dilation)


def test_two_threads_give_the_one_thread_result():
    """The weight gradient sums per-thread partials; the forward splits rows between threads."""
    require_kernels()
    gen = torch.Generator().manual_seed(5)
    x, w, b = torch.randn(8, 16, 20, 20, generator=gen), torch.randn(32, 16, 3, 3, generator=gen), torch.randn(32)
    upstream = torch.randn(8, 32, 20, 20, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(conv2d, x, w, b, upstream, padding="same")
        torch.set_num_threads(2)
        two = _grads(conv2d, x, w, b, upstream, padding="same")
    finally:
        torch.set_num_threads(threads)
    for a, e in zip(two, one):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-4)


def test_switched_off_by_environment(monkeypatch, fresh_library, kernel_calls):
    monkeypatch.setenv(kernels.SWITCH, "0")
    kernels.library.cache_clear()
    assert kernels.library() is None and not grid_direct.usable(torch.ones(1), torch.ones(1))
    _compare(torch.randn(2, 16, 6, 6), torch.randn(32, 16, 3, 3), torch.randn(32), padding="same")
    assert kernel_calls == {"conv": 0, "weight_grad": 0}


def test_a_failed_build_warns_once_and_falls_back(monkeypatch, fresh_library):
    def no_compiler():
        raise kernels.KernelBuildError("no C++ compiler found (install g++, or set CXX)")

    monkeypatch.setattr(kernels, "_compiler", no_compiler)
    with pytest.warns(RuntimeWarning, match="PyTorch paths.*install g\\+\\+"):
        assert kernels.library() is None
    _compare(torch.randn(2, 16, 6, 6), torch.randn(32, 16, 3, 3), torch.randn(32), padding="same")


def test_an_unwritable_cache_warns_and_falls_back(monkeypatch, tmp_path, fresh_library):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("CNNEXP_KERNEL_CACHE", str(blocker / "kernels"))
    with pytest.warns(RuntimeWarning, match="CNNEXP_KERNEL_CACHE at a writable folder"):
        assert kernels.library() is None
    _compare(torch.randn(2, 16, 6, 6), torch.randn(32, 16, 3, 3), torch.randn(32), padding="same")


def test_compiler_errors_are_reported(monkeypatch, tmp_path):
    bad = tmp_path / "broken.cpp"
    bad.write_text("this is not C++\n")
    monkeypatch.setenv("CNNEXP_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(kernels.KernelBuildError, match="broken.cpp"):
        kernels.build((bad,))
    assert not list((tmp_path / "cache").glob("*")), "no library or temporary file may be left behind"


def test_build_is_cached_per_source(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNEXP_KERNEL_CACHE", str(tmp_path))
    compiles = []
    run = subprocess.run

    def counting_run(cmd, *args, **kwargs):
        compiles.extend(["compile"] if "-shared" in cmd else [])
        return run(cmd, *args, **kwargs)

    monkeypatch.setattr(kernels.subprocess, "run", counting_run)
    first = kernels.build()
    assert first.parent == tmp_path and first.exists() and compiles == ["compile"]
    assert kernels.build() == first and compiles == ["compile"]
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left


@pytest.mark.slow
def test_avx2_build_with_8_wide_vectors(tmp_path):
    """A machine without AVX-512 gets 8-float vectors: build that variant and check it in a fresh process."""
    require_kernels()
    script = textwrap.dedent(
        """
        import torch
        from cnnexp.functional import kernels
        from tests.functional.test_kernels import _compare
        assert kernels.vec_width() == 8, kernels.vec_width()
        for c_in, c_out in [(3, 16), (16, 32), (7, 33), (32, 64)]:
            _compare(torch.randn(2, c_in, 9, 8), torch.randn(c_out, c_in, 3, 3), torch.randn(c_out), padding="same")
        print("ok")
        """
    )
    env = {**os.environ, "CNNEXP_KERNEL_CACHE": str(tmp_path), kernels.FLAGS_ENV: "-O2 -mavx2 -mfma -fopenmp"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("c_out", [16, 32, 64, 80])  # 1, 2, 4 and 5 vectors of 16 (2, 4, 8, 10 of 8)
def test_every_register_tile_variant_gives_the_built_in_tiles_result(c_out):
    """Each (R, V, KW) variant the planner may pick computes the same forward and weight gradient; a variant
    that cannot run the shape (V not dividing the vectors) refuses instead of writing garbage."""
    from cnnexp.functional.geometry import conv_geometry
    from cnnexp.functional.grid_gemm import grid_dims, grid_input, tap_offsets

    require_kernels()
    x, w = torch.randn(2, 5, 7, 11), torch.randn(c_out, 5, 3, 3)
    geom = conv_geometry(x, w, None, 1, "same", 1, op="conv2d")
    hs, ws, _ = grid_dims(geom)
    buf, grid, offsets = grid_input(x, geom), (2, hs, ws, *geom.out_hw), tap_offsets(geom, ws)
    taps = kernels.tap_weights(w)
    vecs = taps.shape[2] // kernels.vec_width()
    want = kernels.direct_conv(buf, grid, offsets, taps, c_out)
    grad = torch.randn(2, *geom.out_hw, taps.shape[2])
    want_dw = kernels.direct_weight_grad(buf, grad, grid, offsets)
    for which, run, ref in (("conv", lambda t: kernels.direct_conv(buf, grid, offsets, taps, c_out, tile=t), want),
                            ("weight_grad", lambda t: kernels.direct_weight_grad(buf, grad, grid, offsets, tile=t),
                             want_dw)):
        variants = kernels.direct_tiles(which)
        assert len(variants) >= 6
        for t, (_, v, _) in enumerate(variants):
            if vecs % v:
                with pytest.raises(ValueError, match="cannot run"):
                    run(t)
            else:
                torch.testing.assert_close(run(t), ref, rtol=1e-5, atol=1e-4, msg=f"{which} tile {variants[t]}")


@pytest.mark.parametrize(("kernel", "dilation"), [((3, 3), 2), ((5, 5), 1), ((1, 3), 1)], ids=str)
def test_the_all_taps_weight_gradient_tile_runs_any_offsets_of_its_tap_count(kernel, dilation):
    """The weight-gradient tiles with KW > 3 take all KW taps of the kernel at once, at any offsets (a dilated 3x3
    kernel, where the kernel-row tiles refuse), and refuse another tap count; the planner offers them likewise."""
    from cnnexp.functional.conv2d import _candidates
    from cnnexp.functional.geometry import conv_geometry
    from cnnexp.functional.grid_gemm import grid_dims, grid_input, tap_offsets

    require_kernels()
    x, w = torch.randn(2, 3, 9, 10), torch.randn(16, 3, *kernel)
    geom = conv_geometry(x, w, None, 1, "same", dilation, op="conv2d")
    hs, ws, _ = grid_dims(geom)
    buf, grid, offsets = grid_input(x, geom), (2, hs, ws, *geom.out_hw), tap_offsets(geom, ws)
    grad = torch.randn(2, *geom.out_hw, kernels.padded_channels(16))
    want = kernels.direct_weight_grad(buf, grad, grid, offsets)
    offered = _candidates("weight_grad", geom, True, 16)
    ran = 0
    for t, (r, v, kw) in enumerate(kernels.direct_tiles("weight_grad")):
        if kw <= 3:
            continue
        if kw == kernel[0] * kernel[1]:
            got = kernels.direct_weight_grad(buf, grad, grid, offsets, tile=t)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
            ran += 1
        else:
            with pytest.raises(ValueError, match="cannot run"):
                kernels.direct_weight_grad(buf, grad, grid, offsets, tile=t)
        assert (f"direct:{r}x{v}x{kw}" in offered) == (kw == kernel[0] * kernel[1])
    assert ran == (kernel == (3, 3))
    if dilation > 1:  # the kernel-row tiles need consecutive offsets
        assert not any(name.endswith("x3") for name in offered)


@pytest.mark.parametrize("n, c, h, w, c_out, pads", [(2, 3, 7, 9, 5, (1, 1, 1, 1)), (3, 16, 8, 8, 32, (1, 1, 1, 1)),
                                                     (1, 8, 5, 6, 8, (0, 0, 0, 0)), (2, 17, 6, 5, 20, (2, 2, 1, 1))])
def test_the_compiled_layouts_equal_the_pytorch_ones(n, c, h, w, c_out, pads):
    """`kernels.to_grid` and `kernels.tap_weights` (native/grid_layout.cpp) write exactly what grid_gemm's PyTorch
    grid_input / grad_grid and the permuted, zero-padded weights hold: NCHW, channels_last and expanded (stride 0)
    inputs, shared padding, channel padding to the vector width, the flipped input-gradient kernel."""
    from cnnexp.functional.geometry import op_geometry
    from cnnexp.functional.grid_gemm import grad_grid, grid_dims, grid_input, tap_span

    require_kernels()
    g = op_geometry((h, w), (3, 3), (1, 1), pads)
    hs, ws, off = grid_dims(g)
    span, c_pad = tap_span(g, ws), kernels.padded_channels(c_out)
    x = torch.randn(n, c, h, w)
    for images in (x, x.contiguous(memory_format=torch.channels_last)):
        assert torch.equal(grid_direct.x_grid(images, g), grid_input(images, g))
    for grad in (torch.randn(n, c_out, *g.out_hw), torch.ones(1, 1, 1, 1).expand(n, c_out, *g.out_hw)):
        want = grad_grid(grad, (hs, ws), off, span, channels=c_pad)
        assert torch.equal(kernels.to_grid(grad, span, want.shape[0], hs, ws, channels=c_pad), want)
    weight = torch.randn(c_out, c, 3, 3)
    want = weight.new_zeros((9, c, c_pad))
    want[:, :, :c_out] = weight.permute(2, 3, 1, 0).reshape(9, c, c_out)
    assert torch.equal(kernels.tap_weights(weight), want)
    flipped = weight.new_zeros((9, c_pad, kernels.padded_channels(c)))
    flipped[:, :c_out, :c] = weight.flip(2, 3).permute(2, 3, 0, 1).reshape(9, c_out, c)
    assert torch.equal(kernels.tap_weights(weight, rows=c_pad, flip=True), flipped)
