"""Transfer learning: class groups, freezing, a new head, fine-tuning and the data-fraction experiment."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data.modelnet import Clouds, select_classes
from pcfilter_lib.models import pointnet
from pcfilter_lib.nn.fit import TrainResult
from pcfilter_lib.recipes import transfer

CLASSES = ("a", "b", "c", "d")


def _clouds(n_per_class=8, seed=0) -> Clouds:
    """Four easy classes: points on spheres of different radii and flattening."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for k in range(len(CLASSES)):
        p = rng.normal(size=(n_per_class, 64, 3))
        p /= np.linalg.norm(p, axis=-1, keepdims=True)
        p[..., 2] *= 0.25 + 0.25 * k
        points.append(p)
        labels += [k] * n_per_class
    return Clouds(np.concatenate(points).astype(np.float32), np.asarray(labels, np.int32), CLASSES,
                  tuple(f"c{i}" for i in range(len(labels))))


def _build(n):
    return pointnet.build_pointnet(n, width=0.125)


def test_the_presets_shrink_the_experiment_in_fast_mode():
    fields = ("num_points", "epochs", "head_epochs", "batch_size")
    assert all(getattr(transfer.FAST, f) < getattr(transfer.FULL, f) for f in fields)
    assert transfer.FULL.limit_per_class is None and transfer.FAST.limit_per_class > 0
    with pytest.raises(AttributeError):
        transfer.FULL.epochs = 1  # frozen: a run cannot change the shared preset


def test_split_classes():
    assert transfer.split_classes(CLASSES, 2) == (("a", "b"), ("c", "d"))
    assert transfer.split_classes(CLASSES, ["a"]) == (("b", "c", "d"), ("a",))
    for bad in (["z"], list(CLASSES), []):
        with pytest.raises(ValueError):
            transfer.split_classes(CLASSES, bad)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = _build(len(CLASSES))
    run = transfer.train(model, _clouds(), None, epochs=2, batch_size=8)
    assert isinstance(run, TrainResult) and run.model is model
    assert len(run.epoch_seconds) == len(run.history["loss"]) == 2 and run.seconds >= run.elapsed[-1] > 0
    return transfer.save_model(model, tmp_path_factory.mktemp("w") / "pre.keras")


def test_replace_head_freezes_the_extractor_and_head_training_leaves_it(pretrained):
    model = transfer.replace_head(transfer.load_model(pretrained), 3)
    assert model.output_shape == (None, 3)
    new = ("b", "c", "d")
    trainable = {w.path for w in model.trainable_weights}
    assert trainable and all(path.startswith("new_head") for path in trainable)
    extractor = [w.numpy().copy() for w in pointnet.feature_extractor(model).weights]
    runs = transfer.fine_tune(model, select_classes(_clouds(4), new), select_classes(_clouds(2, seed=1), new),
                              head_epochs=1)
    assert len(runs) == 1 and "val_accuracy" in runs[0].history
    for before, after in zip(extractor, pointnet.feature_extractor(model).weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_full_fine_tuning_changes_weights_but_keeps_batchnorm_statistics(pretrained):
    model = transfer.replace_head(transfer.load_model(pretrained), 4)
    conv = model.get_layer("mlp1_0_conv").kernel.numpy().copy()
    bn = model.get_layer("mlp1_0_bn").moving_mean.numpy().copy()
    runs = transfer.fine_tune(model, _clouds(4), None, head_epochs=1, full_epochs=1)
    assert len(runs) == 2 and [r.epochs for r in runs] == [1, 1]
    assert not np.array_equal(conv, model.get_layer("mlp1_0_conv").kernel.numpy())
    np.testing.assert_array_equal(bn, model.get_layer("mlp1_0_bn").moving_mean.numpy())


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved model"):
        transfer.load_model(tmp_path / "absent.keras")


def test_compare_transfer_reports_every_fraction(pretrained):
    data = _clouds(8)
    lines = []
    results = transfer.compare_transfer(pretrained, data, _clouds(2, seed=1), _clouds(3, seed=2), ("c", "d"),
                                        fractions=(0.25, 1.0), scratch_epochs=1, head_epochs=1, build=_build,
                                        progress=lines.append)
    assert [r.fraction for r in results] == [0.25, 1.0] and [r.train_size for r in results] == [4, 16]
    for r in results:
        assert 0 <= r.scratch_accuracy <= 1 and 0 <= r.transfer_accuracy <= 1
        assert r.scratch_seconds > 0 and r.transfer_seconds > 0
        assert r.scratch_seconds == r.scratch_run.seconds and r.transfer_run.epochs == 1
    assert len(lines) == 2 and "new head" in lines[0]
