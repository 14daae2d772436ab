"""Section 2b's networks on three representations: the inputs of each, and the shipped networks loaded
only for the data set and recipe they learnt from."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib import config
from pcfilter_lib.data import modelnet
from pcfilter_lib.experiments.representation_comparison import runs
from pcfilter_lib.models.saved import shipped_network
from pcfilter_lib.recipes import representations as rep

# Two training meshes per class and one epoch: the code paths, not the accuracies.
TINY = replace(rep.FAST, train_per_class=2, epochs=1, batch_size=8, num_points=64, view_counts=(1, 3))


@pytest.fixture(scope="module")
def data():
    root, _ = modelnet.ensure_dataset(config.data_dir(), "fast")
    return root, rep.make_inputs(root, TINY)


def test_the_three_representations_describe_the_same_meshes(data):
    _, inputs = data
    n_train, n_test = len(inputs.train_labels), len(inputs.test_labels)
    assert n_train == 2 * len(inputs.classes)
    assert inputs.voxels[0].shape == (n_train, 32, 32, 32, 1) and inputs.voxels[1].shape[0] == n_test
    assert inputs.clouds[0].shape == (n_train, 64, 3) and inputs.views[1].shape == (n_test, 12, 32, 32, 1)
    assert set(np.unique(inputs.voxels[0])) <= {0.0, 1.0} and inputs.voxels[0].any()
    assert rep.names(TINY) == ["voxnet", "pointnet", "mvcnn1", "mvcnn3"]
    assert list(rep.chosen_views(3)) == [0, 4, 8]


@pytest.mark.usefixtures("eager_steps")
def test_shipped_networks_are_loaded_for_their_data_and_recipe_only(data, tmp_path):
    root, inputs = data
    cards = rep.train_reference(tmp_path, config.data_dir(), TINY, "fast", progress=False)
    for card in cards:
        card.write((tmp_path / card.model).with_suffix(".json"))
    assert [c.model for c in cards] == [rep.shipped_path(n).name for n in rep.names(TINY)]
    found = runs(root, TINY, inputs, weights=tmp_path)
    for card, (name, (run, shipped)) in zip(cards, found.items(), strict=True):
        assert shipped and run.seconds == card.training_seconds and run.history == card.history
        assert run.epoch_seconds == card.details["epoch_seconds"]
        assert run.test["accuracy"] == pytest.approx(card.test["accuracy"], abs=1e-4), name
    for other in (replace(TINY, epochs=2), replace(TINY, num_points=32)):  # another budget, other inputs
        assert shipped_network(rep.shipped_path("voxnet", tmp_path), root, rep.card_settings(other, "voxnet"),
                               "voxnet") is None
    assert shipped_network(rep.shipped_path("voxnet", tmp_path), tmp_path, rep.card_settings(TINY, "voxnet"),
                           "voxnet") is None  # a folder of no data set
    with pytest.raises(ValueError, match="no network 'mvcnn6'"):
        rep.train_network("mvcnn6", TINY, inputs)
