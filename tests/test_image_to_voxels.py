"""Chapter 7's recipe: the reference run and its model card, scoring per shape and class, the
intermediate volumes of a trained network and the aggregator's share per level."""

from __future__ import annotations

import dataclasses
import inspect
import zipfile

import numpy as np
import pytest
from op_by_op import op_by_op

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data import image_voxels
from pcfilter_lib.experiments import yovo_study
from pcfilter_lib.models import yovo
from pcfilter_lib.recipes import image_to_voxels as i2v

TINY = dataclasses.replace(i2v.FAST, name="tiny", folder="tiny", counts={"train": 4, "val": 4, "test": 6}, epochs=1,
                           batch_size=4, whole_batches=True, track_iou=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The reference run at TINY, its steps run op by op as under ``eager_steps``: tracing YOVO's training
    step costs more than its one step (a batch of four), and what the tests read (files, card) does not depend on it.
    Chapter 7's ablation trains YOVO in graph mode."""
    root = tmp_path_factory.mktemp("i2v")
    with op_by_op():
        card = i2v.train_reference_yovo(root / "weights", root / "data", TINY, progress=False)
    return root, card


def test_the_reference_run_saves_a_network_and_its_card(reference):
    root, card = reference
    model = keras.models.load_model(root / "weights" / card.model)
    assert model.output_shape == (None, 32, 32, 32, 1) and card.parameters == model.count_params()
    assert not model.compiled  # saved for inference: no optimizer state
    with zipfile.ZipFile(root / "weights" / card.model) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert card.target == "yovo" and card.threshold in i2v.THRESHOLDS
    assert card.data["generator"] == image_voxels.GENERATOR and card.data["train"] == 4
    assert set(card.test["mean_iou_by_threshold"]) == {str(t) for t in i2v.THRESHOLDS}
    assert 0 <= card.test["mean_iou"] <= 1 and len(card.history["loss"]) == 1
    assert i2v.VoxelRecipe(**{k: v for k, v in card.settings.items() if k != "seed"}) == TINY


def test_scores_are_means_over_shapes_per_class_and_threshold(tmp_path):
    data = image_voxels.load_split(image_voxels.write_dataset(tmp_path, {"test": 4}, seed=3), "test")
    perfect = i2v.iou_by_class(data.voxels.astype(np.float32), data)
    assert perfect["mean"] == [1.0] * 4 and all(v == [1.0] * 4 for v in perfect["per_class"].values())
    assert set(perfect["per_class"]) == {data.classes[k] for k in data.labels}
    # Half-confident everywhere: empty at thresholds above 0.5, everything at or below.
    half = i2v.iou_by_class(np.full(data.voxels.shape, 0.45), data, (0.3, 0.5))
    np.testing.assert_allclose(half["per_shape"][:, 0], data.voxels.mean(axis=(1, 2, 3)))
    np.testing.assert_array_equal(half["per_shape"][:, 1], 0.0)
    assert i2v.choose_threshold(half) == 0.3


@pytest.mark.usefixtures("eager_steps")
def test_the_parts_of_a_network_and_the_aggregators_shares(tmp_path):
    data = image_voxels.load_split(image_voxels.write_dataset(tmp_path, {"test": 3}, seed=4), "test")
    model = yovo.build_yovo(prior=0.15)
    parts = yovo_study.part_outputs(model, data.images)
    assert list(parts) == ["level 1 alone", "level 2 alone", "level 3 alone", "mean of the levels", "aggregated",
                           "aggregated and refined"]
    assert all(v.shape == (3, 32, 32, 32) for v in parts.values())
    np.testing.assert_allclose(parts["mean of the levels"],
                               np.mean([parts[f"level {k} alone"] for k in (1, 2, 3)], axis=0), atol=1e-6)
    shares = yovo_study.level_weights(model, data, chunk=2)
    assert shares.shape == (3, 3)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-4)  # float32 sums of 32^3 weights
    with pytest.raises(ValueError, match="aggregator and refiner"):
        yovo_study.part_outputs(yovo.build_yovo(use_refiner=False), data.images)


def test_the_shipped_network_learnt_from_these_images_and_still_reconstructs_them(tmp_path):
    from pcfilter_lib.io.model_cards import read_model_card

    card = read_model_card(i2v.SHIPPED)
    assert (card.data["generator"], card.data["version"]) == (image_voxels.GENERATOR, image_voxels.VERSION), \
        "retrain YOVO: the images or grids have changed since"
    # Test images it never saw (the card reports 0.443 on 1,000 of them): a guard against a change
    # to the renderer, the voxeliser or the network's layers that quietly breaks it.
    data = image_voxels.load_split(image_voxels.write_dataset(tmp_path, {"test": 40}, seed=0), "test")
    predicted = i2v.predict(keras.models.load_model(i2v.SHIPPED), data.images, batch_size=len(data))  # one trace
    scores = i2v.iou_by_class(predicted, data, [card.threshold])
    assert scores["mean"][0] > 0.35


def test_each_variant_of_the_ablation_changes_only_what_it_names():
    base = dataclasses.replace(yovo_study.CHAPTER_FAST, model={"use_refiner": True})
    resolved = {name: yovo_study.variant_recipe(base, changes, seed=7) for name, changes in yovo_study.VARIANTS.items()}
    assert resolved["YOVO (Mish, DropBlock, Ranger)"] == (base, 7)
    assert resolved["the same, another seed"] == (base, 1)
    relu, seed = resolved["ReLU instead of Mish"]
    assert seed == 7 and relu.model == {"use_refiner": True, "activation": "relu"}  # merged into the recipe's
    assert dataclasses.replace(relu, model=base.model) == base
    adam, _ = resolved["Adam instead of Ranger"]
    assert adam.optimizer == "adam" and dataclasses.replace(adam, optimizer=base.optimizer) == base
    takes = set(inspect.signature(yovo.build_yovo).parameters)
    assert all(set(variant.model) <= takes for variant, _ in resolved.values())
    assert yovo_study.VARIANTS["the same, another seed"] == {"seed": 1}  # the recipe dicts are left as they were


def test_a_recorded_ablation_is_read_back_for_its_recipe_images_and_variants_only(reference, tmp_path):
    import json

    root, _ = reference
    folder = root / "data" / TINY.folder
    results = [yovo_study.VariantResult(name, 10, 1.5, 0.7, {"loss": [0.9, 0.5]}, 0.3, [0.1, 0.2, 0.3, 0.2],
                                        0.25 + k / 100) for k, name in enumerate(list(yovo_study.VARIANTS)[:2])]
    variants = dict(list(yovo_study.VARIANTS.items())[:2])
    record = tmp_path / "yovo_ablation.json"
    record.write_text(json.dumps(yovo_study.ablation_record(results, TINY, folder, variants)))
    read, whole = yovo_study.recorded_ablation(record, TINY, folder, variants)
    assert read == results and whole["seed"] == 0 and whole["environment"]
    assert yovo_study.recorded_ablation(record, dataclasses.replace(TINY, epochs=2), folder, variants) is None
    assert yovo_study.recorded_ablation(record, TINY, folder, yovo_study.VARIANTS) is None  # other variants
    assert yovo_study.recorded_ablation(record, TINY, folder, variants, seed=1) is None
    assert yovo_study.recorded_ablation(tmp_path / "none.json", TINY, folder, variants) is None
    other = image_voxels.write_dataset(tmp_path / "other", TINY.counts, seed=TINY.data_seed + 1,
                                       image_size=TINY.image_size)
    assert yovo_study.recorded_ablation(record, TINY, other, variants) is None  # images of another seed


def test_mean_shape_guesses_are_scored_like_a_network(tmp_path):
    folder = image_voxels.write_dataset(tmp_path, {"train": 8, "val": 4, "test": 4}, seed=5)
    train, val, test = (image_voxels.load_split(folder, s) for s in image_voxels.SPLITS)
    guessed = yovo_study.mean_shape_scores(train, val, test)
    assert set(guessed) == {"mean training grid", "mean grid of the true class"}
    for result in guessed.values():
        assert result["threshold"] in yovo_study.BASELINE_THRESHOLDS and 0 <= result["test_iou"] <= 1
    # One shape per class, learnt from the test grids themselves: each class mean is its shape.
    firsts = [int(np.flatnonzero(test.labels == k)[0]) for k in np.unique(test.labels)]
    alone = dataclasses.replace(test, **{f: getattr(test, f)[firsts] for f in ("images", "voxels", "labels",
                                                                              "views")})
    assert yovo_study.mean_shape_scores(alone, alone, alone)["mean grid of the true class"]["test_iou"] == 1.0
