"""What a trained model expects of its input, checked before it runs on a new image or slide.

* the number of channels (the input channels of the model's first convolution; every model type
  here reads RGB, and every input is converted to RGB, so this guards models that read other
  images);
* the pixel size, when both are known: ``mpp`` (level-0 microns per pixel) recorded with the model
  from its training dataset, against a slide's ``openslide.mpp-x``; a model trained at 0.25 µm/px
  sees a slide scanned at 0.5 µm/px at half its training magnification, so a ratio beyond
  :data:`MPP_TOLERANCE` is refused unless ``ignore_mpp``;
* the size of the whole-image views the model reads (its registry record's ``view_scales``): a
  view of a whole slide at scale 1 (a full-resolution CNN) would be the slide itself, so views
  above :data:`MAX_VIEW_PIXELS` are refused.

Each failure is an :class:`~zoomin.errors.InputFileError` naming the input and what to change.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from zoomin.errors import InputFileError
from zoomin.image_access import ImageAccess, view_shape
from zoomin.predict.inputs import PredictInput

MPP_TOLERANCE = 0.25  # relative difference of pixel sizes beyond which a slide is refused
MAX_VIEW_PIXELS = 1 << 26  # 67 M pixels: 200 MB as uint8, 800 MB as the float tensor a model reads


def expected_channels(model: nn.Module) -> int | None:
    """Input channels of the model's first convolution (``None`` if it has none)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None


def check_input(
    model: nn.Module,
    meta: dict[str, Any],
    view_scales: tuple[float, ...],
    item: PredictInput,
    image: ImageAccess,
    ignore_mpp: bool = False,
) -> None:
    """Raise :class:`InputFileError` naming ``item`` if ``model`` cannot read it (module docstring)."""
    channels = expected_channels(model)
    if channels is not None and image.channels != channels:
        raise InputFileError(
            item.path, f"has {image.channels} channels but the {meta['model_type']} model reads {channels}"
        )
    model_mpp, slide_mpp = meta.get("mpp"), image.mpp
    if not ignore_mpp and model_mpp and slide_mpp and abs(slide_mpp / float(model_mpp) - 1) > MPP_TOLERANCE:
        raise InputFileError(
            item.path,
            f"is scanned at {slide_mpp:.3g} µm/px but the model was trained on {meta.get('dataset')} at "
            f"{float(model_mpp):.3g} µm/px (it would see the tissue at another magnification); use a slide "
            "at the model's resolution, or pass --ignore-mpp",
        )
    if item.kind == "slide":
        for scale in view_scales:
            height, width = view_shape(image.size, scale)
            if height * width > MAX_VIEW_PIXELS:
                raise InputFileError(
                    item.path,
                    f"the {meta['model_type']} model reads the whole image at scale {scale:g}, a "
                    f"{width}x{height} view of this slide (more than {MAX_VIEW_PIXELS:.3g} pixels): "
                    "it is not a model for whole slides",
                )
