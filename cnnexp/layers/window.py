"""Shape inference for sliding-window layers (Conv2D, MaxPool2D), with a ShapeError when nothing fits."""

from __future__ import annotations

from cnnexp import functional as cf
from cnnexp.layers.base import Layer, Shape
from cnnexp.layers.checks import Padding


def window_output_hw(
    layer: Layer,
    input_shape: Shape,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: Padding,
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    """(H_out, W_out) of a window sliding over a (C, H, W) input (`cnnexp.functional.conv_output_size`).

    Raises:
        ShapeError: naming `layer` and the shapes, when the input is not (C, H, W) or the (dilated)
            window does not fit in the padded image (output below 1x1).
    """
    layer.require_rank(input_shape, 3, "(C, H, W)")
    per_axis = (padding, padding) if isinstance(padding, (str, int)) else padding  # str | int per axis
    out = tuple(
        cf.conv_output_size(size, k, s, p, d)
        for size, k, s, p, d in zip(input_shape[1:], kernel, strides, per_axis, dilation)
    )
    if min(out) < 1:
        extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        raise layer.shape_error(
            input_shape,
            f"the {kernel[0]}x{kernel[1]} window (extent {extent[0]}x{extent[1]}, strides {strides}) does not fit "
            f"in the {input_shape[1]}x{input_shape[2]} image under padding {padding!r} (output would be "
            f"{out[0]}x{out[1]}); use padding='same', a smaller window, fewer downsampling layers, or a larger input",
        )
    return out[0], out[1]
