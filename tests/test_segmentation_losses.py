"""Chapter 3's comparison of losses: a network trained by ``train_reference`` is found again for its own
images and recipe only, with its card's history and time; any other recipe trains in place."""

import dataclasses

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib.experiments.loss_comparison import compare  # noqa: E402
from pcfilter_lib.models.saved import shipped_network  # noqa: E402
from pcfilter_lib.recipes import segmentation_losses as sl  # noqa: E402

TINY = sl.LossRecipe(size=16, train=24, validation=8, test=8, epochs=2, batch_size=8)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    card = sl.train_reference(out, "focal", TINY, progress=False)
    card.command = "test"
    card.write(out / "unet_loss_focal.json")
    return out, card


def test_the_reference_is_loaded_for_its_images_and_recipe(reference):
    out, card = reference
    images = sl.make_images(TINY)
    (run, loaded), = compare(TINY, images, weights=out, names=["focal"]).values()
    assert loaded and run.history == card.history and run.seconds == card.training_seconds
    assert len(run.history["val_mean_iou"]) == TINY.epochs and card.target == "unetlossfocal"
    assert card.settings["loss"] == "focal" and card.data["splits"]["train"] == {"images": 24, "size": 16, "seed": 1}
    probability = run.model.predict(images["test"].images, verbose=0)
    assert probability.shape == (8, 16, 16, 1) and 0 < card.threshold < 1


def test_another_recipe_or_other_images_train_in_place(reference):
    out, card = reference
    longer = dataclasses.replace(TINY, epochs=3)
    (run, loaded), = compare(longer, sl.make_images(longer), weights=out, names=["focal"]).values()
    assert not loaded and len(run.history["loss"]) == 3
    images = sl.make_images(TINY)
    images["test"].labels[0, 0, 0] ^= 1  # one label differs: not the images the card records
    record = sl.images_record(images)
    assert record["labels_sha256"] != card.data["labels_sha256"]
    assert shipped_network(out / "unet_loss_focal.keras", None, sl.card_settings(TINY, "focal"), "U-Net",
                           **record) is None
    assert shipped_network(out / "unet_loss_focal.keras", None, sl.card_settings(TINY, "focal"), "U-Net",
                           **sl.images_record(sl.make_images(TINY))) is not None


def test_the_losses_weigh_the_rare_class_in_their_own_ways():
    train = sl.make_images(TINY)["train"]
    losses = sl.candidates(train)
    assert list(losses) == list(sl.KEYS) == ["BCE", "weighted BCE", "focal", "Dice"]
    y, weight = train.labels[:4].astype("float32"), train.weights[:4]
    scratch = y == 0
    assert scratch[weight > 0].any() and (~scratch)[weight > 0].any()
    # Unsure (0.4 off the truth) on the scratches only, then on the keep pixels only.
    unsure_on_scratches = np.where(scratch, 0.4, 1.0).astype("float32")[..., None]
    unsure_on_keep = np.where(scratch, 0.0, 0.6).astype("float32")[..., None]
    bce, weighted = losses["BCE"], losses["weighted BCE"]
    assert float(weighted(y, unsure_on_scratches, weight)) > float(bce(y, unsure_on_scratches, weight))
    assert float(weighted(y, unsure_on_keep, weight)) < float(bce(y, unsure_on_keep, weight))
    with pytest.raises(ValueError, match="unknown loss 'L1'"):
        sl.train_reference("unused", "L1", TINY)


def test_the_chosen_threshold_lies_inside_a_grown_grid():
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.9).astype("int32")
    # Keep pixels near 0.05, scratches near 0.005: the best threshold lies below the usual grid.
    probability = np.where(labels == 1, rng.uniform(0.03, 1.0, 4000), rng.uniform(0.0, 0.01, 4000))
    mask = np.ones(4000, bool)
    threshold, sweep = sl.inner_threshold(labels, probability, mask)
    grid = list(sweep["threshold"])
    assert grid[0] < 0.05 and grid[0] < threshold < grid[-1]
    assert 0.01 <= threshold <= 0.03
    # Probabilities that separate the classes at 0.5 leave the grid as it was.
    clear = np.where(labels == 1, rng.uniform(0.6, 1.0, 4000), rng.uniform(0.0, 0.4, 4000))
    threshold, sweep = sl.inner_threshold(labels, clear, mask)
    assert sweep["threshold"][0] == 0.05 and sweep["threshold"][-1] == 0.95 and 0.4 <= threshold <= 0.6
