"""Timing helpers and FLOP counts (no timing is asserted: speed is the benchmarks' business)."""

import keras
import pytest

from pcfilter_lib import bench, convmath


def test_time_call_counts_calls_and_orders_statistics():
    calls = []
    timing = bench.time_call(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7
    assert timing.repeats == 5 and timing.low <= timing.median <= timing.high
    with pytest.raises(ValueError, match="repeats"):
        bench.time_call(lambda: None, repeats=0)


def test_model_flops_from_layer_shapes():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2DTranspose(4, 2, strides=2)(x)
    x = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, x)
    expected = (convmath.conv2d_flops((16, 16), 3, 3, 8)      # 3x3 conv at full resolution
                + convmath.conv2d_flops((8, 8), 2, 4, 8)       # transposed conv from 8x8 x 8 channels
                + 16 * 16 * convmath.dense_flops(4, 2))        # dense on every pixel
    assert bench.model_flops(model, (16, 16, 3)) == expected


def test_conv1d_flops_count_a_shared_mlp_on_points():
    inputs = keras.Input((128, 3))
    model = keras.Model(inputs, keras.layers.Conv1D(64, 1)(inputs))
    assert bench.model_flops(model, (128, 3)) == 128 * convmath.dense_flops(3, 64)


def test_matmul_speed_is_measured():
    assert bench.matmul_gflops(256, repeats=2) > 0
    assert bench.numpy_matmul_gflops(256, repeats=2) > 0


def test_device_report_names_the_hardware_and_versions():
    report = bench.device_report()
    assert report["cpu"] and report["cores"] >= 1
    assert isinstance(report["gpus"], list)
    assert report["keras"].startswith("3.") and report["keras_backend"] == keras.backend.backend()
