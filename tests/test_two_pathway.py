"""The two-pathway CNN: both pathways end at the same size, maxout, dense prediction, parameters, saving."""

import keras
import numpy as np
import pytest

from pcfilter_lib.lessons import convmath
from pcfilter_lib.models import layer_counts
from pcfilter_lib.models.two_pathway import build_two_pathway_cnn, maxout_conv


def test_one_patch_gives_one_vector_of_class_probabilities():
    model = build_two_pathway_cnn(input_channels=4, num_classes=5, local_filters=4, global_filters=6)
    out = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((3, 33, 33, 4), "float32")))
    assert out.shape == (3, 1, 1, 5)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert model.get_layer("local2_pool").output.shape[1:3] == model.get_layer("global1_maxout").output.shape[1:3]


def test_a_larger_image_gives_the_map_of_every_patch_it_holds():
    model = build_two_pathway_cnn(local_filters=2, global_filters=3)
    rng = np.random.default_rng(1)
    image = rng.random((1, 40, 37, 4)).astype("float32")
    dense = keras.ops.convert_to_numpy(model(image))
    assert dense.shape == (1, 8, 5, 5)
    for r, c in [(0, 0), (7, 4), (3, 2)]:
        one = keras.ops.convert_to_numpy(model(image[:, r:r + 33, c:c + 33]))
        np.testing.assert_allclose(one[0, 0, 0], dense[0, r, c], rtol=1e-4, atol=1e-6)


def test_parameters_and_receptive_fields():
    model = build_two_pathway_cnn(input_channels=4, num_classes=5, pieces=2)
    pieces = 2
    local = pieces * (convmath.conv2d_params(7, 4, 64) + convmath.conv2d_params(3, 64, 64))
    glob = pieces * convmath.conv2d_params(13, 4, 160)
    head = convmath.conv2d_params(21, 64 + 160, 5)
    assert layer_counts.params_by_prefix(model, ["local", "global", "classifier"]) == {
        "local": local, "global": glob, "classifier": head}
    assert model.count_params() == local + glob + head
    # 7x7, a 4x4 pool, 3x3, a 2x2 pool (all stride 1) see as far as one 13x13 kernel.
    assert layer_counts.chain_receptive_field(model, ["local"]) == (13, 1)
    assert layer_counts.chain_receptive_field(model, ["global"]) == (13, 1)
    assert layer_counts.chain_receptive_field(model, ["global", "classifier"]) == (33, 1)


def test_maxout_is_the_largest_piece():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, maxout_conv(inputs, 3, 3, 3, name="m"))
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 2)).astype("float32")
    pieces = [keras.ops.convert_to_numpy(model.get_layer(f"m_piece{i}")(x)) for i in (1, 2, 3)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), np.max(pieces, axis=0), rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [(dict(patch=13), "larger than 13"),
                                                 (dict(size=20), "at least patch"), (dict(pieces=0), ">= 1")])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_two_pathway_cnn(**kwargs)


def test_saved_model_loads_with_keras_alone(tmp_path):
    model = build_two_pathway_cnn(local_filters=2, global_filters=2)
    model.save(tmp_path / "two_pathway.keras")
    loaded = keras.models.load_model(tmp_path / "two_pathway.keras")
    x = np.random.default_rng(3).random((1, 35, 35, 4)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
