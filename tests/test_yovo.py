"""YOVO: the image/voxel data set (determinism, resuming, reading, rendering) and the network
(shapes, the context aggregator's softmax, the ablation switches, training, saving)."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data import image_voxels
from pcfilter_lib.io.files import read_manifest
from pcfilter_lib.models import yovo
from pcfilter_lib.nn.activations import DropBlock, Mish
from pcfilter_lib.nn.optimizers import Ranger

COUNTS = {"train": 6, "val": 2, "test": 3}
SMALL = dict(image_size=32, grid=16, shard_size=4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return image_voxels.write_dataset(tmp_path_factory.mktemp("iv") / "set", COUNTS, seed=7, **SMALL)


def test_the_dataset_is_byte_identical_for_a_seed_and_resumes_exactly(dataset, tmp_path):
    again = image_voxels.write_dataset(tmp_path / "again", COUNTS, seed=7, **SMALL)
    first, second = read_manifest(dataset), read_manifest(again)
    assert first["files"] == second["files"] and len(first["files"]) == 2 + 1 + 1
    for name in first["files"]:
        assert (dataset / name).read_bytes() == (again / name).read_bytes()
    # An interrupted run (a shard missing) is finished with the same bytes.
    (again / "train/shard_0001.npz").unlink()
    image_voxels.write_dataset(again, COUNTS, seed=7, **SMALL)
    assert (again / "train/shard_0001.npz").read_bytes() == (dataset / "train/shard_0001.npz").read_bytes()
    other = image_voxels.write_dataset(tmp_path / "other", COUNTS, seed=8, **SMALL)
    assert read_manifest(other)["files"] != first["files"]
    with pytest.raises(ValueError, match="already holds other data"):
        image_voxels.write_dataset(again, COUNTS, seed=8, **SMALL)


def test_a_split_loads_with_images_grids_labels_and_views(dataset):
    split = image_voxels.load_split(dataset, "train")
    assert split.images.shape == (6, 32, 32, 3) and split.images.dtype == np.uint8
    assert split.voxels.shape == (6, 16, 16, 16) and split.voxels.dtype == bool
    np.testing.assert_array_equal(split.labels, np.arange(6) % 10)  # classes take turns
    assert split.classes == image_voxels.CLASSES
    assert np.all((split.views[:, 1] >= image_voxels.ELEVATION[0]) & (split.views[:, 1] <= image_voxels.ELEVATION[1]))
    # Solid shapes fill part of the grid and touch its padding-free middle; each image shows an object.
    fractions = split.voxels.mean(axis=(1, 2, 3))
    assert np.all((fractions > 0.005) & (fractions < 0.8))
    assert np.all(split.images.std(axis=2).max(axis=(1, 2)) > 0)  # a row that is not plain background
    example = image_voxels.make_example(7, "train", 4, **{k: SMALL[k] for k in ("image_size", "grid")})
    np.testing.assert_array_equal(example["image"], split.images[4])
    np.testing.assert_array_equal(example["voxels"], split.voxels[4])


def test_a_changed_shard_is_refused(dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    path = copy / "val/shard_0000.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        image_voxels.load_split(copy, "val")
    with pytest.raises(ValueError, match="no image/voxel dataset"):
        image_voxels.load_split(tmp_path, "val")


def test_the_sequence_serves_every_example_once_per_epoch_in_a_new_order(dataset):
    split = image_voxels.load_split(dataset, "train")
    sequence = image_voxels.ImageVoxelSequence(split, batch_size=4, shuffle=True, seed=1)
    assert len(sequence) == 2
    x, y = sequence[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and x.max() <= 255
    assert y.shape == (4, 16, 16, 16, 1) and set(np.unique(y)) <= {0.0, 1.0}

    def epoch():
        images = np.concatenate([sequence[i][0] for i in range(len(sequence))])
        return [int(np.flatnonzero((split.images == image).all(axis=(1, 2, 3)))[0]) for image in images]

    first = epoch()
    sequence.on_epoch_end()
    second = epoch()
    assert sorted(first) == sorted(second) == list(range(6)) and first != second
    with pytest.raises(IndexError):
        sequence[2]
    whole = image_voxels.ImageVoxelSequence(split, batch_size=4, seed=1, whole_batches=True)
    assert len(whole) == 1 and len(whole[0][0]) == 4  # the two examples left over wait for another epoch
    with pytest.raises(ValueError, match="whole batch"):
        image_voxels.ImageVoxelSequence(split, batch_size=8, whole_batches=True)


def test_rendered_images_are_upright():
    """A small cube high above a (degenerate, invisible) point at the bottom must show in the image's top
    half. The background is constant along each row, so rows with an object are those whose pixels differ."""
    cube = np.array([[x, y, z] for z in (0.6, 1.0) for y in (-0.2, 0.2) for x in (-0.2, 0.2)] + [[0, 0, -1.0]])
    quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
    triangles = np.vstack([image_voxels.fan_triangles(quads), [[8, 8, 8]]])
    for seed in range(6):
        image, view = image_voxels.render_image(cube, triangles, np.random.default_rng(seed), size=32)
        rows = np.flatnonzero(np.ptp(image.astype(int), axis=1).max(axis=1) > 0)
        assert rows.size and rows.max() < 16, (seed, view, rows)


def test_fan_triangles_split_polygons():
    np.testing.assert_array_equal(image_voxels.fan_triangles([[0, 1, 2, 3], [4, 5, 6]]),
                                  [[0, 1, 2], [0, 2, 3], [4, 5, 6]])


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return yovo.build_yovo()


def _images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3)).astype(np.float32)


def _predict(model, images):
    """``model``'s output (or list of outputs) for one batch, in inference mode. Called directly:
    ``predict`` would trace a graph of the network for this one batch, which takes longer than running it."""
    outputs = model(images, training=False)
    if isinstance(outputs, list | tuple):
        return [keras.ops.convert_to_numpy(out) for out in outputs]
    return keras.ops.convert_to_numpy(outputs)


def test_shapes_read_like_the_thesis_figure(model):
    assert model.output_shape == (None, 32, 32, 32, 1)
    for i in (1, 2, 3):
        assert model.get_layer(f"level{i}_volume").output.shape == (None, 2, 2, 2, 64)
        assert model.get_layer(f"decoder{i}_volume").output.shape == (None, 32, 32, 32, 1)
    assert model.get_layer("context_weights").output.shape == (None, 32, 32, 32, 3)
    assert model.get_layer("refiner_down3").output.shape == (None, 4, 4, 4, 32)
    assert any(isinstance(layer, DropBlock) for layer in model.layers)
    assert any(isinstance(layer, Mish) for layer in model.layers)
    probabilities = _predict(model, _images())
    assert probabilities.min() >= 0 and probabilities.max() <= 1


def test_the_aggregator_weights_sum_to_one_per_voxel_and_merge_the_volumes(model):
    images = _images(seed=1)
    weights = yovo.context_weights(model, images)
    assert weights.shape == (2, 32, 32, 32, 3) and weights.min() >= 0
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    probe = keras.Model(model.input, [model.get_layer(f"decoder{i}_volume").output for i in (1, 2, 3)]
                        + [model.get_layer("merged_volume").output])
    *volumes, merged = _predict(probe, images)
    np.testing.assert_allclose(merged[..., 0], (weights * np.concatenate(volumes, axis=-1)).sum(-1), atol=1e-5)


def test_the_ablation_switches():
    plain = yovo.build_yovo(use_aggregator=False, use_refiner=False, activation="relu", regulariser="dropout")
    names = {layer.name for layer in plain.layers}
    assert "context_weights" not in names and not any(n.startswith("refiner") for n in names)
    assert not any(isinstance(layer, (DropBlock, Mish)) for layer in plain.layers)
    with pytest.raises(ValueError, match="no context aggregator"):
        yovo.context_weights(plain, _images())
    # Without the aggregator the three volumes are averaged; without the refiner that is the output.
    images = _images(seed=2)
    probe = keras.Model(plain.input, [plain.get_layer(f"decoder{i}_volume").output for i in (1, 2, 3)])
    np.testing.assert_allclose(_predict(plain, images), np.mean(_predict(probe, images), axis=0), atol=1e-6)
    assert yovo.build_yovo(decoder_channels=(16, 8, 4)).get_layer("level1_volume").output.shape == (None, 4, 4, 4, 64)
    for bad in (dict(image_size=48), dict(activation="elu"), dict(regulariser="l2"), dict(decoder_channels=(8,)),
                dict(decoder_channels=(8, 4))):
        with pytest.raises(ValueError):
            yovo.build_yovo(**bad)


def test_trains_a_step_predicts_deterministically_and_saves(model, tmp_path):
    rng = np.random.default_rng(3)
    x = _images(2, seed=3)
    y = (rng.random((2, 32, 32, 32, 1)) < 0.1).astype(np.float32)
    # Eagerly: tracing the training graph of this network takes longer than running a step.
    yovo.compile_yovo(model, Ranger(1e-3), run_eagerly=True)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and {"iou_0.3", "iou_0.5"} <= set(history)
    first = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), first)  # no DropBlock now
    model.save(tmp_path / "yovo.keras")
    loaded = keras.models.load_model(tmp_path / "yovo.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), first, atol=1e-6)
    assert isinstance(loaded.optimizer, Ranger)


def test_every_output_starts_at_the_prior_occupancy():
    images = _images(seed=4)
    model = yovo.build_yovo(prior=0.12, use_aggregator=False)
    probe = keras.Model(model.input, [model.get_layer(f"decoder{i}_volume").output for i in (1, 2, 3)]
                        + [model.get_layer("refiner_out").output])
    # Untrained, every sigmoid reads its bias, logit(prior), plus what the weights add to it.
    for volume in _predict(probe, images):
        assert abs(float(np.median(volume)) - 0.12) < 0.06
    with pytest.raises(ValueError, match="prior"):
        yovo.build_yovo(prior=1.0)


def test_parameters_by_part_add_up_and_follow_the_figure(model):
    parts = yovo.parameters_by_part(model)
    assert list(parts) == ["encoder", "levels", "decoders", "context aggregator", "refiner"]
    assert sum(parts.values()) == model.count_params()
    plain = yovo.parameters_by_part(yovo.build_yovo(use_aggregator=False, use_refiner=False))
    assert list(plain) == ["encoder", "levels", "decoders"]
