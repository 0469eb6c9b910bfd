"""Streaming CNN: tile-by-tile forward and backward equal the whole-view pass (outputs and every
parameter's gradient), for tiles that do and do not divide the map; memory stays a tile's; bad views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin.errors import ConfigError, UserError
from zoomin.image_access import InMemoryImage
from zoomin.measure.memory import measure_peak_memory
from zoomin.models import build_model
from zoomin.models.streaming_cnn import BLOCK_GEOMETRY, input_span, output_length, streamed_features

pytestmark = pytest.mark.usefixtures("single_thread")


def image(seed: int, height: int, width: int) -> InMemoryImage:
    return InMemoryImage(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def small_streaming(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("streaming_cnn", 3, **{"scale": 1.0, "tile": 16, "width": 4, "blocks": 2, **overrides})


def test_spans_and_lengths_of_unpadded_layers():
    geometry = BLOCK_GEOMETRY * 2  # conv3, pool2, conv3, pool2: receptive field 10, stride 4
    assert output_length(geometry, 10) == 1 and output_length(geometry, 9) == 0
    assert output_length(geometry, 100) == 23
    assert input_span(geometry, 0, 1) == (0, 10)
    assert input_span(geometry, 5, 8) == (20, 38)


@pytest.mark.parametrize("tile", [4, 8, 12, 1000])  # output tiles of 1, 2 and 3 px, and one tile
def test_streaming_equals_backpropagation_through_the_whole_view(tile):
    model = small_streaming(tile=tile)
    images = [image(0, 70, 61), image(1, 45, 52)]
    labels = torch.tensor([2, 0])
    loss = torch.nn.functional.cross_entropy(model(images).logits, labels)
    loss.backward()
    streamed = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    whole = torch.stack([model.stream(im.view(1.0)[None]).amax(dim=(2, 3))[0] for im in images])
    reference = torch.nn.functional.cross_entropy(model.classifier(whole), labels)
    reference.backward()
    torch.testing.assert_close(loss, reference)
    for name, p in model.named_parameters():
        torch.testing.assert_close(streamed[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
        assert p.grad.abs().sum() > 0


def test_the_streamed_forward_equals_the_whole_forward_and_holds_one_tile():
    model = small_streaming(width=8)
    view = image(2, 256, 256).view(1.0)[None]
    with torch.no_grad():
        whole = model.stream(view)
    torch.testing.assert_close(streamed_features(model.stream, model.geometry, view, 4), whole)
    streamed_peak = measure_peak_memory(lambda: streamed_features(model.stream, model.geometry, view, 4), "cpu")
    whole_peak = measure_peak_memory(lambda: model.stream(view), "cpu")
    assert streamed_peak.forward_peak_bytes < whole_peak.forward_peak_bytes / 4


def test_a_view_smaller_than_the_receptive_field_is_refused():
    with pytest.raises(UserError, match=r"image 0 .*9x40 px, smaller than the 10 px"):
        small_streaming()([image(3, 9, 40)])


def test_bad_params_name_the_key():
    with pytest.raises(ConfigError, match="blocks"):
        build_model("streaming_cnn", 2, blocks=0)
