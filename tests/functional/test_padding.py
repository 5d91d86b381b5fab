"""Keras/TensorFlow 'same' padding at any stride and dilation; explicit padding; output sizes."""

from __future__ import annotations

import math

import pytest

from cnnexp.functional import conv_output_size, resolve_padding, same_padding


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (5, 3, 1, 1, (1, 1)),
        (4, 2, 1, 1, (0, 1)),  # even kernel: the odd pixel goes after
        (4, 3, 2, 1, (0, 1)),  # out 2, total 1
        (5, 3, 2, 1, (1, 1)),  # out 3, total 2
        (6, 5, 3, 1, (1, 1)),  # out 2, total 3 + 5 - 6 = 2
        (5, 4, 2, 1, (1, 2)),  # out 3, total 4 + 4 - 5 = 3
        (7, 3, 1, 2, (2, 2)),  # dilated extent 5
        (8, 3, 3, 2, (1, 2)),  # out 3, total 2*3 + 5 - 8 = 3
        (3, 1, 2, 1, (0, 0)),
        (2, 5, 1, 1, (2, 2)),  # kernel larger than the input
        (10, 2, 2, 1, (0, 0)),
    ],
)
def test_same_padding_table(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected


@pytest.mark.parametrize("size", range(1, 14))
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_output_is_ceil_of_size_over_stride(size, kernel, stride, dilation):
    before, after = same_padding(size, kernel, stride, dilation)
    assert 0 <= after - before <= 1
    assert conv_output_size(size, kernel, stride, "same", dilation) == math.ceil(size / stride)
    assert conv_output_size(size, kernel, stride, (before, after), dilation) == math.ceil(size / stride)


@pytest.mark.parametrize(
    ("padding", "expected"),
    [("valid", (0, 0, 0, 0)), ("VALID", (0, 0, 0, 0)), (2, (2, 2, 2, 2)), ((1, 3), (1, 1, 3, 3)),
     ("same", (0, 1, 1, 2))],
)
def test_resolve_padding(padding, expected):
    # in (4, 7), kernel (2, 4): 'same' gives H total 1 -> (0, 1), W total 3 -> (1, 2)
    assert resolve_padding(padding, (4, 7), (2, 4), 1, 1) == expected


@pytest.mark.parametrize("padding", ["full", -1, (1, -2), (1, 2, 3), 1.5, True])
def test_resolve_padding_rejects(padding):
    with pytest.raises(ValueError, match="padding"):
        resolve_padding(padding, (5, 5), (3, 3))


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation", "expected"),
    [(180, 3, 1, "same", 1, 180), (180, 2, 2, "valid", 1, 90), (45, 2, 2, "valid", 1, 22), (7, 3, 2, 1, 1, 4),
     (9, 3, 1, "valid", 2, 5), (5, 5, 1, "valid", 1, 1), (4, 5, 1, "valid", 1, 0)],
)
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
