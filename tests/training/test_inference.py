"""Test-time Monte Carlo averaging: M repeatable, distinct draws from the evaluation stream, their
mean probabilities, the spread of the predicted class, and one pass for models that draw nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin.config.runs import Stream, stream_seed
from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.training.evaluate import mean_spread
from zoomin.training.inference import image_output, image_prediction, score_images

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 11


def random_image(seed: int, size: int = 64) -> InMemoryImage:
    return InMemoryImage(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def zoomin() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("zoomin", 2, tile=16, subtile=5, s1=0.25, s2=0.5, n=2).eval()


class PassCounter:
    """Counts the forward passes of a model."""

    def __init__(self, model: torch.nn.Module):
        self.passes = 0
        model.register_forward_hook(self.hook)

    def hook(self, *args) -> None:
        self.passes += 1


def test_the_m_draws_continue_one_generator_from_the_evaluation_stream():
    """Draw 0 is the single draw of M = 1 (the evaluation stream); draw m continues the same
    generator. Replayed by hand here, draw by draw; the average is their mean."""
    model, image = zoomin(), random_image(0)
    prediction = image_prediction(model, image, torch.device("cpu"), SEED, "sample", draws=5)
    generator = torch.Generator().manual_seed(stream_seed(SEED, Stream.EVALUATION))
    with torch.no_grad():
        replay = torch.stack(
            [torch.softmax(model([image], generator=generator).logits, dim=1)[0] for _ in range(5)]
        )
    torch.testing.assert_close(prediction.draw_probabilities, replay)
    torch.testing.assert_close(prediction.probabilities, replay.mean(dim=0))
    single = torch.softmax(image_output(model, image, torch.device("cpu"), SEED, "sample").logits, dim=1)[0]
    torch.testing.assert_close(prediction.draw_probabilities[0], single)
    assert prediction.sampled and len({round(float(p[1]), 6) for p in replay}) >= 4  # distinct draws
    again = image_prediction(model, image, torch.device("cpu"), SEED, "sample", draws=5)
    assert torch.equal(again.draw_probabilities, prediction.draw_probabilities)  # repeatable


def test_the_spread_is_the_std_over_draws_of_the_predicted_class():
    model, image = zoomin(), random_image(1)
    prediction = image_prediction(model, image, torch.device("cpu"), SEED, "sample", draws=6)
    predicted = int(prediction.probabilities.argmax())
    column = prediction.draw_probabilities[:, predicted].double().numpy()
    assert prediction.spread == pytest.approx(float(np.std(column, ddof=1)))
    assert prediction.spread > 0
    assert image_prediction(model, image, torch.device("cpu"), SEED, "sample").spread is None  # one draw: unknown


@pytest.mark.parametrize("case", ["topk", "cnn"])
def test_a_model_that_draws_nothing_runs_once_with_no_spread(case):
    if case == "topk":
        model, sampling = zoomin(), "topk"
    else:
        torch.manual_seed(0)
        model, sampling = build_model("cnn", 2, scale=0.5).eval(), "sample"
    counter = PassCounter(model)
    prediction = image_prediction(model, random_image(2), torch.device("cpu"), SEED, sampling, draws=7)
    assert counter.passes == 1 and not prediction.sampled
    assert prediction.draw_probabilities.shape == (1, 2) and prediction.spread == 0.0


def test_probabilities_of_several_images_do_not_depend_on_the_others():
    model = zoomin()
    images = [random_image(3), random_image(4), random_image(5)]
    scores = score_images(model, images, torch.device("cpu"), SEED, "sample", 4)
    probabilities, spreads = scores.probabilities, scores.spreads
    alone_scores = score_images(model, images[2:], torch.device("cpu"), SEED, "sample", 4)
    alone, alone_spreads = alone_scores.probabilities, alone_scores.spreads
    torch.testing.assert_close(probabilities[2:], alone)
    assert spreads[2:] == alone_spreads and all(s is not None and s >= 0 for s in spreads)
    with pytest.raises(ValueError, match="draws"):
        image_prediction(model, images[0], torch.device("cpu"), SEED, "sample", draws=0)


def test_the_mean_spread_is_unknown_when_any_image_is():
    assert mean_spread([0.1, 0.3]) == pytest.approx(0.2)
    assert mean_spread([0.1, None]) is None and mean_spread([]) is None
    assert mean_spread([0.0, 0.0]) == 0.0
