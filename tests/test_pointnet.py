"""PointNet: shapes, permutation invariance, the T-Net regulariser, serialisation, critical points,
and the shipped reference model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.models import pointnet

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "pcfilter_lib" / "weights" / "pointnet_modelnet10.keras"


def _cloud(n=64, seed=0):
    return np.random.default_rng(seed).normal(size=(2, n, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(0)
    model = pointnet.build_pointnet(4, width=0.125)
    # Eagerly: tracing the training step would take longer than the two steps and every test of the model.
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(1).normal(size=(16, 64, 3)).astype(np.float32)
    model.fit(x, np.arange(16) % 4, epochs=1, batch_size=8, verbose=0)  # non-trivial BN statistics
    return model


def test_output_shapes_width_and_momentum():
    narrow = pointnet.build_pointnet(10, 128, width=0.25, momentum=0.5)
    wide = pointnet.build_pointnet(10, 128, width=0.5)
    assert narrow.output_shape == (None, 10)
    assert 3 * narrow.count_params() < wide.count_params()
    assert {lay.momentum for lay in narrow.layers if isinstance(lay, keras.layers.BatchNormalization)} == {0.5}
    assert narrow.get_layer(pointnet.GLOBAL_FEATURE).output.shape == (None, 256)
    for bad in ({"width": 0}, {"momentum": 1.0}):
        with pytest.raises(ValueError):
            pointnet.build_pointnet(10, **bad)


def test_permutation_invariance(small):
    x = _cloud()
    order = np.random.default_rng(3).permutation(x.shape[1])
    a = keras.ops.convert_to_numpy(small(x, training=False))
    b = keras.ops.convert_to_numpy(small(x[:, order], training=False))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-5)


def test_any_number_of_points(small):
    assert small.predict(_cloud(100), verbose=0).shape == (2, 4)


def test_orthogonal_regulariser_matches_the_formula():
    reg = pointnet.OrthogonalRegularizer(3, weight=0.5)
    rotation = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
    assert float(reg(rotation.reshape(1, 9))) == pytest.approx(0, abs=1e-6)
    a = np.random.default_rng(0).normal(size=(4, 3, 3)).astype(np.float32)
    expected = 0.5 * np.mean([np.sum((np.eye(3) - m @ m.T) ** 2) for m in a])
    assert float(reg(a.reshape(4, 9))) == pytest.approx(expected, rel=1e-5)
    again = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(again, pointnet.OrthogonalRegularizer) and again.get_config() == reg.get_config()


def test_tnets_start_at_the_identity_and_add_their_loss():
    model = pointnet.build_pointnet(3, width=0.125)
    for name, k in (("input_tnet", 3), ("feature_tnet", 8)):
        transform = keras.Model(model.input, model.get_layer(f"{name}_reshape").output)
        np.testing.assert_allclose(transform(_cloud(), training=False)[0], np.eye(k), atol=1e-6)
    model(_cloud(), training=True)
    assert len(model.losses) == 2


def test_save_and_load_without_custom_objects(small, tmp_path):
    path = tmp_path / "pointnet.keras"
    small.save(path)
    x = _cloud()
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), small.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    seg = pointnet.build_pointnet_segmentation(3, width=0.125)
    seg.save(tmp_path / "seg.keras")
    # called directly: predict would trace a graph of each network for this one batch
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "seg.keras")(x, training=False),
                               seg(x, training=False), rtol=1e-5, atol=1e-6)


def test_segmentation_is_per_point_and_equivariant():
    model = pointnet.build_pointnet_segmentation(5, width=0.125)
    x = _cloud(40)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 40, 5)
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-5)
    order = np.random.default_rng(0).permutation(40)
    np.testing.assert_allclose(model.predict(x[:, order], verbose=0), y[:, order], rtol=1e-4, atol=1e-6)


def test_critical_points_alone_give_the_same_global_feature(small):
    cloud = _cloud(200)[0]
    critical = pointnet.critical_points(small, cloud)
    assert 0 < len(critical) < len(cloud)
    features = pointnet.feature_extractor(small)
    full = keras.ops.convert_to_numpy(features(cloud[None], training=False))
    only = keras.ops.convert_to_numpy(features(cloud[critical][None], training=False))
    np.testing.assert_allclose(only, full, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not SHIPPED.exists(), reason="the reference PointNet has not been trained yet "
                    "(python data_scripts/train_reference_models.py --target pointnet)")
def test_shipped_model_loads_alone_and_matches_its_manifest(tmp_path):
    manifest = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert manifest["file_bytes"] == SHIPPED.stat().st_size < 5_000_000
    # trained at full size: on the full procedural set (older cards say so with fast_mode)
    assert manifest["settings"].get("modelnet", "full") == "full" and not manifest["settings"].get("fast_mode")
    assert manifest["test"]["accuracy"] >= 0.8
    # learnt from the procedural set the generator makes today
    assert manifest["data"]["generator"] == procedural_modelnet.GENERATOR
    assert manifest["data"]["version"] == procedural_modelnet.VERSION
    # A fresh interpreter that imports only the model module loads it and classifies the fast
    # procedural test set (the first meshes of the full set, with the same sampling). Each mesh comes
    # from its own seed, so the test meshes are made without the training meshes before them.
    script = (
        "from pcfilter_lib import runtime; runtime.setup(0)\n"
        "import keras, numpy as np, sys\n"
        "import pcfilter_lib.models.pointnet\n"
        f"model = keras.models.load_model({str(SHIPPED)!r})\n"
        "from pcfilter_lib.data import modelnet, procedural_modelnet\n"
        "counts = {name: (0, test) for name, (_, test) in procedural_modelnet.FAST_COUNTS.items()}\n"
        f"root = procedural_modelnet.generate({str(tmp_path / 'pm')!r}, seed=0, counts=counts)\n"
        f"test = modelnet.load_split(root, 'test', {manifest['settings']['num_points']}, "
        f"cache_dir={str(tmp_path / 'cache')!r})\n"
        "scores = keras.ops.convert_to_numpy(model(test.points, training=False))  # one batch: no graph to trace\n"
        "print(float(np.mean(np.argmax(scores, 1) == test.labels)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"PCFILTER_FAST": "1", "PATH": ""}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) >= 0.8


def test_trains_under_mixed_precision():
    # The orthogonality penalty is computed in float32, so it adds to the float32 loss.
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = pointnet.build_pointnet(num_classes=3, num_points=32, width=0.125)
        model.compile("adam", "sparse_categorical_crossentropy", run_eagerly=True)  # one step: no graph to trace
        x = np.random.default_rng(0).normal(size=(4, 32, 3)).astype("float32")
        loss = model.train_on_batch(x, np.array([0, 1, 2, 0]))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert np.isfinite(float(np.ravel(loss)[0]))


def test_head_regularizer_adds_its_penalty_to_the_loss_and_survives_saving(tmp_path):
    keras.utils.set_random_seed(0)
    plain = pointnet.build_head(32, 4, width=0.125, dropout=0.0)
    keras.utils.set_random_seed(0)
    alpha = 1e-2
    l1 = pointnet.build_head(32, 4, width=0.125, dropout=0.0, regularizer=keras.regularizers.L1(alpha))
    assert not plain.losses
    dense = [layer for layer in l1.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 3 and all(layer.kernel_regularizer is not None for layer in dense)
    expected = alpha * sum(float(np.abs(layer.kernel.numpy()).sum()) for layer in dense)
    l1(np.zeros((2, 32), np.float32))
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in l1.losses)) == pytest.approx(expected, rel=1e-5)
    model = pointnet.build_pointnet(3, width=0.125, head_regularizer=keras.regularizers.L2(1e-3))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.get_layer("head_fc0_dense").kernel_regularizer.get_config() == {"l2": 1e-3}
