"""U-Net: shapes, options, parameter count, padding helpers, saving."""

import keras
import numpy as np
import pytest

from pcfilter_lib.data.scans import crop_to, pad_to_multiple
from pcfilter_lib.lessons import convmath
from pcfilter_lib.models.unet import build_unet, multiple_of


def test_default_unet_matches_the_original_filter():
    model = build_unet()
    assert model.input_shape == (None, None, None, 5)
    assert multiple_of(model) == 16
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             and not isinstance(layer, keras.layers.Conv2DTranspose) and layer.kernel_size == (3, 3)]
    assert [c.filters for c in convs] == [8, 8, 16, 16, 32, 32, 48, 48, 64, 64, 48, 48, 32, 32, 16, 16, 8, 8]
    assert all(isinstance(layer, keras.layers.LeakyReLU) for layer in model.layers if "_act" in layer.name)
    # Parameters from the layer shapes (the chapter derives the same by hand).
    expected = sum(convmath.conv2d_params(c.kernel_size, c.input.shape[-1], c.filters) for c in convs)
    expected += sum(convmath.conv2d_params(2, u.input.shape[-1], u.filters) for u in model.layers
                    if isinstance(u, keras.layers.Conv2DTranspose))
    expected += convmath.conv2d_params(1, 8, 1)
    assert model.count_params() == expected


@pytest.mark.parametrize(("height", "width"), [(16, 16), (48, 32), (64, 80)])
def test_runs_on_any_multiple_of_two_to_the_depth(height, width):
    out = build_unet(input_channels=3)(np.zeros((2, height, width, 3), "float32"))
    assert out.shape == (2, height, width, 1)
    assert np.all((out >= 0) & (out <= 1))


def test_options_softmax_batchnorm_dropout_resize():
    model = build_unet(input_channels=1, num_classes=3, depth=2, filters=(4, 8, 16), kernel_size=5,
                       activation="relu", batch_norm=True, dropout=0.2, upsampling="resize")
    out = keras.ops.convert_to_numpy(model(np.random.default_rng(0).normal(size=(1, 12, 20, 1)).astype("float32")))
    assert out.shape == (1, 12, 20, 3)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert any(isinstance(layer, keras.layers.UpSampling2D) for layer in model.layers)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(depth=3), "depth \\+ 1 = 4"),
    (dict(filters=(8, 0, 16, 32, 64)), "positive"),
    (dict(upsampling="nearest"), "upsampling must be one of"),
    (dict(input_channels=0), "input_channels"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_unet(**kwargs)


def test_pad_and_crop_round_trip():
    image = np.arange(7 * 10 * 2, dtype="float32").reshape(7, 10, 2)
    padded, mask = pad_to_multiple(image, 16)
    assert padded.shape == (16, 16, 2) and mask.shape == (16, 16)
    assert mask.sum() == 70 and mask[:7, :10].all()
    assert np.all(padded[~mask] == 0)
    np.testing.assert_array_equal(crop_to(padded, image.shape[:2]), image)
    prediction = build_unet(input_channels=2)(padded[None])[0]
    assert crop_to(keras.ops.convert_to_numpy(prediction), (7, 10)).shape == (7, 10, 1)
    with pytest.raises(ValueError, match="multiple must be positive"):
        pad_to_multiple(image, 0)
    with pytest.raises(ValueError, match="shape \\(H, W, ...\\)"):
        pad_to_multiple(np.zeros(5), 4)


def test_save_and_load(tmp_path):
    model = build_unet(input_channels=2, depth=2, filters=(4, 8, 8))
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 2)).astype("float32")
    model.save(tmp_path / "unet.keras")
    loaded = keras.models.load_model(tmp_path / "unet.keras")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
