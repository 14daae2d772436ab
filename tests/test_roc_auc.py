"""ROC AUC of a keep score: the pairwise definition, ties, ignored labels and the undefined case."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcfilter_lib.nn import scores


def pairwise_auc(label, score):
    """The definition: P(score of a true point > score of an artefact), ties counting half."""
    pos, neg = score[label == 1], score[label == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * ties) / (len(pos) * len(neg))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=2, max_size=60))
def test_equals_the_pairwise_definition_with_ties(rows):
    label, score = (np.array(column) for column in zip(*rows, strict=True))
    if label.min() == label.max():
        with pytest.raises(ValueError, match="both true points"):
            scores.roc_auc(label, score / 4)
        return
    assert scores.roc_auc(label, score / 4) == pytest.approx(pairwise_auc(label, score / 4))


def test_perfect_reversed_and_uninformative_scores():
    label = np.array([1, 1, 1, 0, 0])
    assert scores.roc_auc(label, np.array([0.9, 0.8, 0.7, 0.2, 0.1])) == 1.0
    assert scores.roc_auc(label, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 0.0
    assert scores.roc_auc(label, np.full(5, 0.5)) == 0.5
    # a threshold cannot do better than the ranking: one artefact above one true point
    assert scores.roc_auc(label, np.array([0.9, 0.8, 0.3, 0.5, 0.1])) == pytest.approx(5 / 6)


def test_ignores_other_labels_and_masked_points_and_accepts_a_trailing_axis():
    label = np.array([[1, 0, 255], [1, 0, 1]], np.uint8)
    score = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.7]])
    assert scores.roc_auc(label, score) == pytest.approx(pairwise_auc(np.array([1, 0, 1, 0, 1]),
                                                                       np.array([0.9, 0.1, 0.2, 0.8, 0.7])))
    mask = np.array([[True, True, True], [False, True, True]])
    assert scores.roc_auc(label, score[..., None], mask) == pytest.approx(
        pairwise_auc(np.array([1, 0, 0, 1]), np.array([0.9, 0.1, 0.8, 0.7])))
    with pytest.raises(ValueError, match="same shape"):
        scores.roc_auc(label, score[:1])
