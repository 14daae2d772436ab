"""TernausNet and the layer counts: VGG11's encoder, the decoder's widths, receptive fields, FLOPs, saving."""

import keras
import numpy as np
import pytest

from pcfilter_lib.lessons import convmath
from pcfilter_lib.models import layer_counts
from pcfilter_lib.models.ternausnet import DECODER_WIDTHS, VGG11_STAGES, build_ternausnet
from pcfilter_lib.models.unet import build_unet


def expected_params(input_channels: int, num_classes: int, nf: int) -> dict[str, int]:
    """The encoder's and the rest's weights from the layer widths, 3x3 kernels throughout."""
    encoder, c, skips = 0, input_channels, []
    for stage in VGG11_STAGES:
        for f in stage:
            encoder += convmath.conv2d_params(3, c, f)
            c = f
        skips.append(c)
    rest, below = 0, c
    for level, (middle, out) in enumerate(DECODER_WIDTHS):
        c_in = below if level == 0 else below + skips[-level]  # the centre block reads no skip
        rest += convmath.conv2d_params(3, c_in, middle * nf) + convmath.conv2d_params(3, middle * nf, out * nf)
        below = out * nf
    rest += convmath.conv2d_params(3, below + skips[0], nf) + convmath.conv2d_params(1, nf, num_classes)
    return {"encoder": encoder, "rest": rest}


@pytest.mark.parametrize(("channels", "classes", "nf"), [(3, 1, 32), (5, 3, 8)])
def test_parameters_follow_from_the_widths(channels, classes, nf):
    model = build_ternausnet(input_channels=channels, num_classes=classes, num_filters=nf)
    expected = expected_params(channels, classes, nf)
    counted = layer_counts.params_by_prefix(model, ["enc", "centre", "dec", "output"])
    assert counted["enc"] == expected["encoder"]
    assert counted["centre"] + counted["dec"] + counted["output"] == expected["rest"]
    assert model.count_params() == sum(expected.values())
    convs = [la for la in model.layers if la.name.startswith("enc") and isinstance(la, keras.layers.Conv2D)]
    assert [la.filters for la in convs] == [f for stage in VGG11_STAGES for f in stage]  # eight, as VGG11


def test_output_keeps_the_size_of_any_multiple_of_32():
    model = build_ternausnet(input_channels=3, num_classes=4, num_filters=4)
    out = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((2, 64, 96, 3), "float32")))
    assert out.shape == (2, 64, 96, 4)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-5)
    assert model.get_layer("centre_up").output.shape[-1] == DECODER_WIDTHS[0][1] * 4


def test_rejects_counts_below_one():
    with pytest.raises(ValueError, match="must be >= 1"):
        build_ternausnet(num_filters=0)


def test_receptive_field_of_a_chain_matches_convmath():
    unet = build_unet(input_channels=5)
    level = [(3, 1, 1), (3, 1, 1), (2, 2, 1)]
    assert layer_counts.chain_layers(unet, ["down", "bottleneck"]) == level * 4 + [(3, 1, 1)] * 2
    assert layer_counts.chain_receptive_field(unet, ["down", "bottleneck"]) == convmath.receptive_field(
        level * 4 + [(3, 1, 1)] * 2)[-1]
    model = build_ternausnet(num_filters=4)
    size, jump = layer_counts.chain_receptive_field(model, ["enc"])
    assert jump == 2 ** len(VGG11_STAGES)
    with pytest.raises(ValueError, match="no convolution or pooling"):
        layer_counts.chain_receptive_field(model, ["nothing"])


def test_conv_flops_counts_convolutions_and_transposed_ones():
    inputs = keras.Input((8, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(x)
    model = keras.Model(inputs, x)
    expected = convmath.conv2d_flops((8, 6), 3, 3, 4) + 2 * 8 * 6 * 4 * 9 * 2
    assert layer_counts.conv_flops(model) == expected
    free = keras.Model(*(lambda i: (i, keras.layers.Conv2D(4, 3)(i)))(keras.Input((None, None, 3))))
    with pytest.raises(ValueError, match="no fixed input size"):
        layer_counts.conv_flops(free)
    assert layer_counts.conv_flops(free, (10, 7)) == convmath.conv2d_flops((8, 5), 3, 3, 4)


def test_saved_model_loads_with_keras_alone(tmp_path):
    model = build_ternausnet(num_filters=2)
    path = tmp_path / "ternausnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(1).random((1, 32, 32, 3), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
