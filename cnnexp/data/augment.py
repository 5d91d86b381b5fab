"""Keras-style augmentation with torchvision.transforms.v2, applied per training image (uint8 `(C, H, W)`)."""

from __future__ import annotations


def keras_augment(flip: str | None = "horizontal", rotation: float = 0.1, zoom: float = 0.1,
                  translation: float = 0.0, fill: float = 0.0):
    """The Keras preprocessing layers of the flowers tutorial, as one `torchvision.transforms.v2.Compose`.

    `keras_augment()` is the lecture's `Sequential([RandomFlip("horizontal"), RandomRotation(0.1),
    RandomZoom(0.1)])`.

    Args:
        flip: "horizontal", "vertical", "horizontal_and_vertical" or None (Keras RandomFlip modes).
        rotation: Keras RandomRotation factor: a random angle in +-rotation * 360 degrees (0.1 -> +-36 deg).
        zoom: Keras RandomZoom factor: scale drawn in [1 - zoom, 1 + zoom] (both axes together).
        translation: Keras RandomTranslation factor: shift up to +-translation of the height / width.
        fill: value of pixels that come from outside the image. Keras fills by reflection
            (fill_mode="reflect"); torchvision fills with a constant, so corners differ (documented).

    Returns:
        a v2.Compose (picklable, so it works with DataLoader workers and DDP spawn), or the identity when all
        factors are off.
    """
    from torchvision.transforms import v2

    steps = []
    if flip in ("horizontal", "horizontal_and_vertical"):
        steps.append(v2.RandomHorizontalFlip())
    if flip in ("vertical", "horizontal_and_vertical"):
        steps.append(v2.RandomVerticalFlip())
    if flip not in (None, "horizontal", "vertical", "horizontal_and_vertical"):
        from cnnexp.errors import ConfigError

        raise ConfigError(f"data.augment.flip={flip!r} is invalid: choose horizontal, vertical, "
                          "horizontal_and_vertical or null.")
    bilinear = v2.InterpolationMode.BILINEAR
    if rotation:
        steps.append(v2.RandomRotation(degrees=abs(rotation) * 360.0, interpolation=bilinear, fill=fill))
    if zoom or translation:
        steps.append(v2.RandomAffine(degrees=0.0, translate=(translation, translation) if translation else None,
                                     scale=(1.0 - zoom, 1.0 + zoom) if zoom else None,
                                     interpolation=bilinear, fill=fill))
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
