"""Timing helpers and FLOP counts (no timing is asserted: speed is the benchmarks' business)."""

from pathlib import Path

import keras
import pytest

from pcfilter_lib.lessons import convmath
from pcfilter_lib.timing import clock


def test_time_call_counts_calls_and_orders_statistics():
    calls = []
    timing = clock.time_call(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7
    assert timing.repeats == 5 and timing.low <= timing.median <= timing.high
    with pytest.raises(ValueError, match="repeats"):
        clock.time_call(lambda: None, repeats=0)


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
    assert clock.model_flops(model, (16, 16, 3)) == expected


def test_conv1d_flops_count_a_shared_mlp_on_points():
    inputs = keras.Input((128, 3))
    model = keras.Model(inputs, keras.layers.Conv1D(64, 1)(inputs))
    assert clock.model_flops(model, (128, 3)) == 128 * convmath.dense_flops(3, 64)


def test_matmul_speed_is_measured():
    assert clock.matmul_gflops(256, repeats=2) > 0


def test_device_report_names_the_hardware_and_versions():
    report = clock.device_report()
    assert report["cpu"] and report["cores"] >= 1
    assert isinstance(report["gpus"], list)
    assert report["keras"].startswith("3.") and report["keras_backend"] == keras.backend.backend()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="no peak to reset (not Linux)")
def test_the_peak_memory_is_measured_from_its_last_reset():
    import numpy as np

    assert clock.reset_peak_memory()
    block = np.ones(40 * 2**20 // 8)  # 40 MiB, touched
    high = clock.peak_memory_mb()
    del block
    assert clock.peak_memory_mb() > high - 5  # the peak stays when the memory goes (to the kernel's accounting)
    assert clock.reset_peak_memory()
    assert clock.peak_memory_mb() < high - 30


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="no /proc/cpuinfo to compare with")
def test_cpu_name_says_how_wide_the_vector_instructions_are():
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    flags = set(flags.split(":", 1)[1].split())
    expected = "(AVX-512)" if "avx512f" in flags else "(AVX2)" if "avx2" in flags else None
    name = clock.cpu_name()
    assert name.endswith(expected) if expected else "(" not in name
    assert len(name) > len(expected or "")  # the model name comes first


@pytest.mark.skipif(not (Path(__file__).parent.parent / "pcfilter_lib/weights/pointnet_filter.keras").is_file(),
                    reason="the shipped point filter is missing")
def test_filter_speed_benchmark_runs_and_reports_its_ratios(tmp_path, capsys, monkeypatch):
    import json
    import os
    import runpy

    from pcfilter_lib.io.scan import save_scan
    from pcfilter_lib.simulate.dataset import make_scan
    from pcfilter_lib.simulate.scanner import ScannerConfig

    save_scan(tmp_path / "scan.npz", make_scan(3, 0, ScannerConfig(width=160, height=120)))
    root = Path(__file__).parent.parent
    # The script runs in this process, which has started TensorFlow already (a fresh one would add only that);
    # what it sets in the environment for itself is undone afterwards.
    monkeypatch.setenv("PCFILTER_FAST", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    benchmark = runpy.run_path(str(root / "benchmarks/filter_speed.py"))
    status = benchmark["main"](["--scan", str(tmp_path / "scan.npz"), "--repeats", "1", "--sizes", "30000",
                                "--out", str(tmp_path)])
    result = capsys.readouterr()
    assert status == 0, result.err
    assert "U-Net / SOR time ratio" in result.out and "points/s" in result.out
    report = json.loads((tmp_path / "filter_speed.json").read_text())
    assert report["point_filter_points_per_s"] > 0 and report["ratio_point_filter_over_sor"] > 0
    assert report["scan"] == {"width": 160, "height": 120, "points": report["scan"]["points"]}
    assert [row["points"] for row in report["sizes"]] == [report["scan"]["points"], 30000]


def test_model_bytes_count_inputs_outputs_and_weights_of_the_counted_layers():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)  # not counted: its traffic is left out
    x = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, x)
    one = (16 * 16 * 3 + 16 * 16 * 8) + (8 * 8 * 8 + 8 * 8 * 2)  # each layer's input and output
    weights = (3 * 3 * 3 * 8 + 8) + (8 * 2 + 2)
    assert clock.model_bytes(model, (16, 16, 3)) == (one + weights) * 4
    # The weights are read once per batch: the bytes per input fall as the batch grows.
    assert clock.model_bytes(model, (16, 16, 3), batch=4) == (4 * one + weights) * 4


def test_memory_speed_is_measured():
    assert clock.memory_bandwidth_gbs(8, repeats=2) > 0
