"""The evaluation's ROC AUC (computed without scikit-learn) against hand-worked values and
scikit-learn's ``roc_auc_score`` on random scores with and without ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from zoomin.training.evaluate import two_class_auc


def _probabilities(scores) -> torch.Tensor:
    p = torch.tensor(scores, dtype=torch.float64)
    return torch.stack([1 - p, p], 1)


def test_hand_worked_values():
    assert two_class_auc([0, 0, 1, 1], _probabilities([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert two_class_auc([1, 1, 0, 0], _probabilities([0.1, 0.2, 0.8, 0.9])) == 0.0
    # pairs (pos, neg): (0.5 vs 0.5) a tie = 1/2, (0.5 vs 0.2) = 1, (0.1 vs 0.5) = 0, (0.1 vs 0.2) = 0
    assert two_class_auc([1, 0, 1, 0], _probabilities([0.5, 0.5, 0.1, 0.2])) == 1.5 / 4
    assert two_class_auc([0, 1, 0], _probabilities([0.3, 0.3, 0.3])) == 0.5


def test_one_class_has_no_auc():
    assert two_class_auc([1, 1, 1], _probabilities([0.2, 0.5, 0.9])) is None


@pytest.mark.parametrize("ties", [False, True])
def test_agrees_with_scikit_learn(ties):
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 80))
        labels = rng.integers(0, 2, n).tolist()
        if len(set(labels)) < 2:
            continue
        scores = rng.integers(0, 5, n) / 4.0 if ties else rng.random(n)
        probabilities = _probabilities(scores)
        expected = roc_auc_score(labels, probabilities[:, 1].numpy())
        assert two_class_auc(labels, probabilities) == pytest.approx(expected, abs=1e-12)
