"""Import weights that Keras 3 saved (`model.save_weights("x.weights.h5")` or `model.save("x.keras")`), and export
them the other way (`save_keras_weights`: a `.weights.h5` file that `keras_model.load_weights` reads;
`save_keras_archive`: a `.keras` model, architecture included, that `keras.models.load_model` reads).

Keras 3's HDF5 layout keys each layer by its snake-case class name and its rank among the model's layers
of that class (conv2d, conv2d_1, ..., dense, dense_1, ...), whatever names the user gave:

    layers/conv2d/vars/0   kernel (kH, kW, C_in, C_out)  ->  cnnexp Conv2D.weight (C_out, C_in, kH, kW)
    layers/conv2d/vars/1   bias   (C_out,)
    layers/dense/vars/0    kernel (in, out)              ->  cnnexp Dense.weight (out, in)
    layers/dense/vars/1    bias   (out,)
    layers/depthwise_conv2d/vars/0   kernel (kH, kW, C_in, m)  ->  DepthwiseConv2D.weight (C_in*m, 1, kH, kW)
    layers/separable_conv2d/vars/0,1,2   depthwise kernel (kH, kW, C_in, m), pointwise kernel
                                         (1, 1, C_in*m, filters) -> (filters, C_in*m, 1, 1), bias
    layers/batch_normalization/vars/0..3 gamma, beta, moving_mean, moving_variance (C,)  (as present:
                                         scale=False drops gamma, center=False beta)

KerasSequential names its layers the same way, so layers match by name. A `.keras` file is a zip archive
whose `model.weights.h5` member has this layout. Only numeric arrays are read (h5py); nothing is unpickled.
Dense kernels port unchanged because cnnexp's Flatten uses Keras's channels-last order by default.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from cnnexp.errors import ConfigError, DataError, ShapeError
from cnnexp.layers import BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Layer, SeparableConv2D
from cnnexp.models.summary import weight_counts

if TYPE_CHECKING:
    from cnnexp.models.sequential import KerasSequential

ARCHIVE_MEMBER = "model.weights.h5"


def _read_h5(source: str | io.BytesIO, where: str) -> dict[str, list[np.ndarray]]:
    """{layer key: [vars/0, vars/1, ...]} for every layer of the file that has weights."""
    import h5py

    try:
        f = h5py.File(source, "r")
    except OSError as e:
        raise DataError(f"{where} is not an HDF5 file that Keras 3 wrote ({e}); save it with "
                        f"model.save_weights('model.weights.h5') or model.save('model.keras')") from None
    with f:
        if "layers" not in f:
            raise DataError(f"{where} has no 'layers' group, so it is not a Keras 3 weights file (found "
                            f"{sorted(f.keys())}); Keras 2 .h5 files are not supported, re-save with Keras 3")
        weights: dict[str, list[np.ndarray]] = {}
        for key, group in f["layers"].items():
            if "layers" in group:
                raise DataError(f"{where}: layer {key!r} is a nested model; only flat Sequential models load")
            vars_ = group.get("vars", {})
            arrays = [np.asarray(vars_[i][()]) for i in sorted(vars_.keys(), key=int)]
            if arrays:
                weights[key] = arrays
        return weights


def read_keras_weights(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read a `.weights.h5` file or a `.keras` archive into {layer key: [arrays in Keras layout]}.

    Raises:
        DataError: the file is missing, or not in a Keras 3 format.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Keras weights file {path} does not exist; pass the path of a .weights.h5 or .keras file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if ARCHIVE_MEMBER not in zf.namelist():
                raise DataError(f"{path} is a zip archive without {ARCHIVE_MEMBER} (it has {zf.namelist()}); "
                                f"save the model with Keras 3's model.save('model.keras')")
            data = io.BytesIO(zf.read(ARCHIVE_MEMBER))
        return _read_h5(data, f"{path}:{ARCHIVE_MEMBER}")
    return _read_h5(str(path), str(path))


class KerasVar(NamedTuple):
    """One Keras variable of a layer: the cnnexp tensor it fills, its shape in Keras's layout, the conversion of
    a Keras array (as a tensor) to the cnnexp layout, and the reverse (for `save_keras_weights`)."""

    target: torch.Tensor
    keras_shape: tuple[int, ...]
    convert: Callable[[torch.Tensor], torch.Tensor]
    to_keras: Callable[[torch.Tensor], torch.Tensor]


def _same(t: torch.Tensor) -> KerasVar:
    return KerasVar(t, tuple(t.shape), lambda k: k, lambda w: w)


def _conv_kernel(t: torch.Tensor) -> KerasVar:
    """(C_out, C_in, kH, kW) <- Keras (kH, kW, C_in, C_out); also SeparableConv2D's 1x1 pointwise kernel."""
    return KerasVar(t, tuple(t.permute(2, 3, 1, 0).shape), lambda k: k.permute(3, 2, 0, 1),
                    lambda w: w.permute(2, 3, 1, 0))


def _depthwise_kernel(t: torch.Tensor, c_in: int) -> KerasVar:
    """(C_in * m, 1, kH, kW), channel c * m + k <- Keras (kH, kW, C_in, m)."""
    kh, kw = t.shape[2:]
    m = t.shape[0] // c_in
    return KerasVar(t, (kh, kw, c_in, m), lambda k: k.permute(2, 3, 0, 1).reshape(t.shape),
                    lambda w: w.reshape(c_in, m, kh, kw).permute(2, 3, 0, 1))


def _keras_vars(layer: Layer) -> list[KerasVar]:
    """The variables Keras stores for `layer`, in Keras's order (vars/0, vars/1, ...)."""
    bias = [_same(layer.bias)] if getattr(layer, "bias", None) is not None else []
    if isinstance(layer, SeparableConv2D):
        return [_depthwise_kernel(layer.depthwise_weight, layer.input_shape[0]),
                _conv_kernel(layer.pointwise_weight), *bias]
    if isinstance(layer, DepthwiseConv2D):
        return [_depthwise_kernel(layer.weight, layer.input_shape[0]), *bias]
    if isinstance(layer, Conv2D):
        return [_conv_kernel(layer.weight), *bias]
    if isinstance(layer, Dense):
        return [KerasVar(layer.weight, tuple(layer.weight.t().shape), lambda k: k.t(), lambda w: w.t()), *bias]
    if isinstance(layer, BatchNormalization):  # gamma, beta, moving mean, moving variance
        gamma = [_same(layer.weight)] if layer.weight is not None else []
        return [*gamma, *bias, _same(layer.moving_mean), _same(layer.moving_variance)]
    raise ConfigError(f"layer {layer.label} has weights but no Keras weight mapping")


def _describe(shapes: dict[str, list[tuple[int, ...]]]) -> str:
    return ", ".join(f"{k} {' + '.join(map(str, v))}" for k, v in shapes.items()) or "none"


def load_keras_weights(model: KerasSequential, path: str | Path) -> None:
    """Copy the weights of a Keras 3 `.weights.h5` / `.keras` file into `model`, in place.

    The Keras model must have the same layers with weights, in the same order and with the same shapes
    (it was built for the same input shape and class count). Nothing is copied unless everything matches.

    Raises:
        DataError: unreadable file. ConfigError: the layer lists differ. ShapeError: a weight's shape differs.
    """
    stored = read_keras_weights(path)
    ours = {layer.name: layer for layer in model.layers if sum(weight_counts(layer))}
    variables = {name: _keras_vars(layer) for name, layer in ours.items()}
    expected = {name: [v.keras_shape for v in vs] for name, vs in variables.items()}
    found = {name: [tuple(a.shape) for a in arrays] for name, arrays in stored.items()}
    if set(found) != set(expected):
        raise ConfigError(
            f"the layers with weights in {path} do not match the model's: file has [{_describe(found)}], model "
            f"has [{_describe(expected)}] (Keras shapes); build the same architecture on both sides"
        )
    for name, shapes in expected.items():
        if found[name] != shapes:
            raise ShapeError(f"layer {ours[name].label}: {path} holds weights of shapes {found[name]} but the model "
                             f"needs {shapes} (Keras layout); build the model for the same input_shape, "
                             f"num_classes and layer sizes")
    with torch.no_grad():
        for name, vs in variables.items():
            for v, array in zip(vs, stored[name]):
                v.target.copy_(v.convert(torch.from_numpy(np.ascontiguousarray(array))))


def save_keras_weights(model: KerasSequential, path: str | Path) -> Path:
    """Write `model`'s weights as a Keras 3 `.weights.h5` file, the reverse of `load_keras_weights`.

    The Keras model must have the same layers (e.g. the lecture's `keras.Sequential`, built for the same input
    shape and class count): `keras_model.load_weights(path)` then gives the same logits, on channels-last input.
    Written to a temporary file and renamed, so a failed write leaves no partial file.

    Raises:
        ConfigError: the file name does not end in `.weights.h5` (Keras 3 refuses other names), or a layer with
            parameters has no Keras mapping.
    """
    import h5py

    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ConfigError(f"{path}: Keras 3 loads weights only from files named *.weights.h5. "
                          f"Fix: name it {path.name.split('.')[0]}.weights.h5")
    variables = {layer.name: _keras_vars(layer) for layer in model.layers if sum(weight_counts(layer))}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for name, vs in variables.items():
                group = f.create_group(f"layers/{name}/vars")
                for i, v in enumerate(vs):
                    array = v.to_keras(v.target.detach().cpu()).numpy()
                    group.create_dataset(str(i), data=np.ascontiguousarray(array, dtype=np.float32))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _keras_layer(layer: Layer, keras: Any) -> Any:
    """The Keras 3 layer that computes what `layer` does (same arguments), for `save_keras_archive`."""
    from cnnexp.layers import Activation, Dropout, Flatten, MaxPool2D, Rescaling

    kl = keras.layers
    padding = getattr(layer, "padding", "valid")
    if not isinstance(padding, str):
        raise ConfigError(f"layer {layer.label} has padding={padding!r}, which Keras cannot express. "
                          f"Fix: use padding 'valid' or 'same' to export it as a .keras model")
    if isinstance(layer, Conv2D):
        return kl.Conv2D(layer.filters, layer.kernel_size, layer.strides, padding, dilation_rate=layer.dilation_rate,
                         groups=getattr(layer, "groups", 1), activation=layer.activation, use_bias=layer.use_bias,
                         name=layer.name)
    if isinstance(layer, Dense):
        return kl.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias, name=layer.name)
    if isinstance(layer, MaxPool2D):
        return kl.MaxPooling2D(layer.pool_size, layer.strides, padding, name=layer.name)
    if isinstance(layer, Rescaling):
        return kl.Rescaling(layer.scale, layer.offset, name=layer.name)
    if isinstance(layer, Flatten) and layer.data_format == "channels_last":
        return kl.Flatten(name=layer.name)
    if isinstance(layer, Dropout):
        return kl.Dropout(layer.rate, name=layer.name)
    if isinstance(layer, Activation):
        return kl.Activation(layer.activation, name=layer.name)
    raise ConfigError(f"layer {layer.label} has no Keras counterpart here. Fix: export format=keras (weights only)")


def save_keras_archive(model: KerasSequential, path: str | Path) -> Path:
    """Write `model` as a Keras 3 `.keras` archive (architecture and weights): `keras.models.load_model(path)`
    gives the same logits on channels-last input. Needs the keras package (any backend).

    Raises:
        ConfigError: the name does not end in `.keras`, keras is missing, or a layer has no Keras counterpart.
    """
    import tempfile

    path = Path(path)
    if path.suffix != ".keras":
        raise ConfigError(f"{path}: Keras 3 archives are named *.keras. Fix: name it {path.stem}.keras")
    try:
        import keras
    except ImportError as err:
        raise ConfigError(f"writing a .keras archive needs keras ({err}). Fix: pip install keras") from None
    c, h, w = model.input_shape
    km = keras.Sequential([keras.Input((h, w, c)), *(_keras_layer(layer, keras) for layer in model.layers)])
    with tempfile.TemporaryDirectory() as tmp:
        km.load_weights(save_keras_weights(model, Path(tmp) / "model.weights.h5"))
    km.save(path)
    return path
