"""Multi-view CNN: shared weights, a view pool that ignores view order and count, saving and loading."""

from __future__ import annotations

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.models import mvcnn


def _views(n=4, v=3, size=16, seed=0):
    return np.random.default_rng(seed).random((n, v, size, size, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = mvcnn.build_mvcnn(3, size=16, filters=(8, 16), hidden=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
    model.fit(_views(12), np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)  # non-trivial BN statistics
    return model


def test_output_shape_any_number_of_views(trained):
    for v in (1, 3, 7):
        assert trained.predict(_views(v=v), verbose=0).shape == (4, 3)


def test_one_cnn_is_shared_by_all_views(trained):
    convolutions = [layer for layer in trained.get_layer("shared_cnn").layers if "conv" in layer.name]
    assert len(convolutions) == 2
    assert trained.count_params() == trained.get_layer("shared_cnn").count_params() + (16 * 16 + 16) + (16 * 3 + 3)


def test_view_pool_is_a_max_over_views(trained):
    views = _views()
    pooled = keras.Model(trained.input, trained.get_layer("view_pool").output)
    per_view = keras.Model(trained.input, trained.get_layer("unfold_views").output)
    features = per_view.predict(views, verbose=0)
    np.testing.assert_allclose(pooled.predict(views, verbose=0), features.max(axis=1), rtol=1e-6)
    # Each view's features depend on that view alone: the CNN run on view 1 by itself gives the same row.
    np.testing.assert_allclose(per_view.predict(views[:, 1:2], verbose=0)[:, 0], features[:, 1], atol=1e-5)
    # Order of the views does not matter; repeating a view does not change the pool either.
    shuffled = views[:, [2, 0, 1]]
    np.testing.assert_allclose(trained.predict(shuffled, verbose=0), trained.predict(views, verbose=0), atol=1e-6)
    repeated = views[:, [0, 1, 2, 2]]
    np.testing.assert_allclose(trained.predict(repeated, verbose=0), trained.predict(views, verbose=0), atol=1e-6)


def test_round_trip(trained, tmp_path):
    path = tmp_path / "mvcnn.keras"
    trained.save(path)
    loaded = keras.models.load_model(path)
    views = _views()
    np.testing.assert_allclose(loaded.predict(views, verbose=0), trained.predict(views, verbose=0), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        mvcnn.build_mvcnn(10, size=4)
    with pytest.raises(ValueError, match="num_classes"):
        mvcnn.build_mvcnn(1)


def test_turning_every_view_by_180_degrees_is_a_symmetry_of_the_network(trained):
    # geometry.views.render_depth_views returns its pictures turned by 180 degrees and the networks learn
    # from them so. That costs nothing: the same network with every 3x3 kernel turned by 180 degrees
    # gives exactly the same scores on the turned views ("same" padding and 2x2 pools on even sides are
    # symmetric, batch norm and the global pools do not see positions), so no view order is easier to
    # learn than the other.
    turned = keras.models.clone_model(trained)
    turned.set_weights(trained.get_weights())
    for layer in turned.get_layer("shared_cnn").layers:
        if "conv" in layer.name:
            (kernel,) = layer.get_weights()
            layer.set_weights([kernel[::-1, ::-1]])
    views = _views(n=5, v=3)
    upright = np.rot90(views, 2, axes=(2, 3))
    np.testing.assert_allclose(turned.predict(upright, verbose=0), trained.predict(views, verbose=0),
                               rtol=1e-4, atol=1e-6)
    # The check has teeth: the unchanged network scores the turned views differently.
    assert not np.allclose(trained.predict(upright, verbose=0), trained.predict(views, verbose=0), atol=1e-4)
