"""Keras-style augmentation with torchvision.transforms.v2, applied per training image (uint8 `(C, H, W)`)."""

from __future__ import annotations

import math


class ReflectBorder:
    """Run geometric transforms on a symmetrically padded image, then crop the centre back.

    Keras's RandomRotation / RandomZoom / RandomTranslation fill pixels that come from outside the image by
    reflection (fill_mode="reflect": `d c b a | a b c d | d c b a`); torchvision fills a constant. Padding by
    enough mirrored pixels before the transform (rotation and zoom act about the centre) gives the same
    picture up to interpolation at the seams.

    Args:
        transform: the geometric transforms (a v2.Compose).
        extent: how far, as a multiple of the half-size, the transforms reach outside the image:
            `(|cos a| + |sin a|) / (1 - zoom) + 2 * translation` for the largest angle `a`.
    """

    def __init__(self, transform, extent: float) -> None:
        self.transform, self.extent = transform, extent

    def __call__(self, image):
        from torchvision.transforms.v2 import functional as TF

        h, w = image.shape[-2:]
        pad = min(math.ceil((self.extent - 1.0) * max(h, w) / 2) + 1, min(h, w))
        padded = TF.pad(image, [pad], padding_mode="symmetric")  # (C, H + 2 pad, W + 2 pad)
        return TF.center_crop(self.transform(padded), [h, w])  # (C, H, W)

    def __repr__(self) -> str:
        return f"ReflectBorder(extent={self.extent:.3f}, transform={self.transform})"


def keras_augment(flip: str | None = "horizontal", rotation: float = 0.1, zoom: float = 0.1,
                  translation: float = 0.0, fill_mode: str = "reflect", fill: float = 0.0):
    """The Keras preprocessing layers of the flowers tutorial, as torchvision.transforms.v2 transforms.

    `keras_augment()` is the lecture's `Sequential([RandomFlip("horizontal"), RandomRotation(0.1),
    RandomZoom(0.1)])`, with Keras's default reflection at the borders. Rotation, zoom and shift are drawn
    independently and uniformly, as Keras does, and applied as one affine warp (one interpolation, where
    Keras interpolates once per layer).

    Args:
        flip: "horizontal", "vertical", "horizontal_and_vertical" or None (Keras RandomFlip modes).
        rotation: Keras RandomRotation factor: a random angle in +-rotation * 360 degrees (0.1 -> +-36 deg).
        zoom: Keras RandomZoom factor: scale drawn in [1 - zoom, 1 + zoom] (both axes together).
        translation: Keras RandomTranslation factor: shift up to +-translation of the height / width.
        fill_mode: "reflect" (Keras's default: mirror the image at its borders) or "constant" (`fill`).
        fill: the value of outside pixels with fill_mode="constant".

    Returns:
        a picklable transform of one `(C, H, W)` image (uint8 or float), usable in DataLoader workers and
        with DDP spawn; the identity when all factors are off.
    """
    from torchvision.transforms import v2

    from cnnexp.errors import ConfigError

    if flip not in (None, "horizontal", "vertical", "horizontal_and_vertical"):
        raise ConfigError(f"data.augment.flip={flip!r} is invalid: choose horizontal, vertical, "
                          "horizontal_and_vertical or null.")
    if fill_mode not in ("reflect", "constant"):
        raise ConfigError(f"data.augment.fill_mode={fill_mode!r} is invalid: choose reflect or constant.")
    if not 0 <= zoom < 1 or not 0 <= translation < 0.5:
        raise ConfigError(f"data.augment zoom={zoom!r} / translation={translation!r} out of range: "
                          "expected 0 <= zoom < 1 and 0 <= translation < 0.5.")
    flips = []
    if flip in ("horizontal", "horizontal_and_vertical"):
        flips.append(v2.RandomHorizontalFlip())
    if flip in ("vertical", "horizontal_and_vertical"):
        flips.append(v2.RandomVerticalFlip())
    geometric = []
    if rotation or zoom or translation:  # one warp: Keras's independent uniform angle, zoom and shift draws
        geometric.append(v2.RandomAffine(degrees=abs(rotation) * 360.0,
                                         translate=(translation, translation) if translation else None,
                                         scale=(1.0 - zoom, 1.0 + zoom) if zoom else None,
                                         interpolation=v2.InterpolationMode.BILINEAR, fill=fill))
    if geometric and fill_mode == "reflect":
        angle = math.radians(min(abs(rotation) * 360.0, 45.0))
        extent = (abs(math.cos(angle)) + abs(math.sin(angle))) / (1.0 - zoom) + 2.0 * translation
        steps = flips + [ReflectBorder(v2.Compose(geometric), extent)]
    else:
        steps = flips + geometric
    return v2.Compose(steps) if steps else v2.Identity()


AUGMENT_PRESETS = {  # keyword arguments of keras_augment, named so that `data.augment=flowers` works
    "flowers": {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1},  # the Keras flowers tutorial
    "light": {"flip": None, "rotation": 0.03, "zoom": 0.1, "translation": 0.1},  # digits / mnist: no flips
}


def resolve_augment(augment: object):
    """A data module's `augment` argument as a transform: None / "none", a preset name, or a callable.

    Raises:
        ConfigError: an unknown preset name or a value that is not callable.
    """
    if augment is None or augment == "none":
        return None
    if isinstance(augment, str):
        if augment not in AUGMENT_PRESETS:
            from cnnexp.errors import ConfigError

            raise ConfigError(f"data.augment={augment!r} is invalid: choose none, {', '.join(AUGMENT_PRESETS)}, "
                              "or a transform config with _target_ (e.g. cnnexp.data.augment.keras_augment).")
        return keras_augment(**AUGMENT_PRESETS[augment])
    if not callable(augment):
        from cnnexp.errors import ConfigError

        raise ConfigError(f"data.augment={augment!r} is invalid: expected a preset name or a callable transform.")
    return augment
