"""Section 2b's networks on three representations: the inputs of each, and the shipped networks loaded
only for the data set and recipe they learnt from; the data-share study's shares of the training shapes
and its shipped networks, loaded only for their share."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib import config
from pcfilter_lib.data import modelnet
from pcfilter_lib.experiments.representation_comparison import runs, runs_by_share
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


def test_shares_are_stratified_nested_and_keep_every_class():
    labels = np.repeat(np.arange(4), [10, 3, 40, 1])
    picked = {share: rep.share_indices(labels, share) for share in (0.1, 0.25, 0.5, 1.0)}
    for share, rows in picked.items():
        assert np.all(np.diff(rows) > 0)
        assert np.bincount(labels[rows], minlength=4).tolist() == [max(1, round(share * n)) for n in (10, 3, 40, 1)]
    assert set(picked[0.1]) <= set(picked[0.25]) <= set(picked[0.5]) <= set(picked[1.0]) == set(range(54))
    assert not np.array_equal(rep.share_indices(labels, 0.5, seed=1), picked[0.5])  # a random draw per seed
    for wrong in (0, 1.5):
        with pytest.raises(ValueError, match="lies in"):
            rep.share_indices(labels, wrong)
    chapter = rep.CHAPTER  # 800 shapes in batches of 32: 25 steps an epoch
    for n_share in (80, 200, 400, 800):
        epochs = rep.share_recipe(chapter, 800, n_share).epochs
        per_epoch = math.ceil(n_share / chapter.batch_size)
        assert (epochs - 1) * per_epoch < chapter.epochs * 25 <= epochs * per_epoch
    assert rep.share_recipe(chapter, 800, 800) == chapter
    assert rep.share_path("voxnet", 1.0) == rep.shipped_path("voxnet")
    assert rep.share_path("mvcnn12", 0.1).name == "representation_mvcnn12_share010.keras"


@pytest.mark.usefixtures("eager_steps")
def test_shipped_share_networks_are_loaded_for_their_share_only(data, tmp_path):
    root, inputs = data
    study = rep.ShareStudy(shares=(0.5, 1.0), networks=("mvcnn1",))  # the quickest
    cards = rep.train_share_reference(tmp_path, config.data_dir(), TINY, study, "fast", progress=False)
    for card in cards:
        card.write((tmp_path / card.model).with_suffix(".json"))
    assert [c.model for c in cards] == ["representation_mvcnn1_share050.keras"]
    # One shape per class, two epochs of two steps for the three steps of one epoch on all of them.
    assert all(c.data["train"] == 10 and c.settings["share"] == 0.5 and c.settings["epochs"] == 2 for c in cards)
    whole = {name: object() for name in study.networks}  # runs' networks on all shapes stand for share 1
    found = runs_by_share(root, TINY, inputs, study, whole=whole, weights=tmp_path)
    assert all(found[name, 1.0] is whole[name] for name in study.networks)
    for card, name in zip(cards, study.networks, strict=True):
        run, shipped = found[name, 0.5]
        assert shipped and run.seconds == card.training_seconds and run.history == card.history
        assert run.test["accuracy"] == pytest.approx(card.test["accuracy"], abs=1e-4), name
    for suffix in (".keras", ".json"):  # the share-50% network under the share-25% name is not loaded
        shutil.copy(tmp_path / f"representation_mvcnn1_share050{suffix}",
                    tmp_path / f"representation_mvcnn1_share025{suffix}")
    longer, _ = rep.share_run(TINY, inputs, 0.25, study)  # one shape per class too, so the same epochs
    assert shipped_network(rep.share_path("mvcnn1", 0.25, tmp_path), root,
                           rep.share_settings(longer, "mvcnn1", 0.25, study), "mvcnn1") is None
    assert shipped_network(rep.share_path("mvcnn1", 0.5, tmp_path), root,
                           rep.share_settings(longer, "mvcnn1", 0.5, study), "mvcnn1") is not None
