"""Benchmark workloads: every installed Keras backend trains the same models to comparable losses."""

import dataclasses
import json
import math
from concurrent.futures import ThreadPoolExecutor

import jax_backend
import pytest
from op_by_op import op_by_op

from pcfilter_lib.timing import workloads

INSTALLED = [b for b in workloads.BACKENDS if workloads.missing_backend(b) is None]
# Smaller than FAST, and unlike it not what a worker falls back to in fast mode, so a row of these sizes
# shows that they reached the worker. Nothing here times the workloads: a row's cost is starting its
# backend and compiling the step, which no size changes.
TINY = dataclasses.replace(workloads.FAST, unet_input=(32, 32, 5), unet_scan=(32, 32), voxel_grid=8,
                           pointnet_points=64, repeats=1, matmul_size=128)


def test_missing_and_unknown_backends_are_explained():
    assert workloads.missing_backend("tensorflow") is None
    assert "unknown backend 'theano'" in workloads.missing_backend("theano")
    row = workloads.run_in_subprocess("theano", "unet")
    assert row["skipped"].startswith("unknown backend")


@pytest.mark.usefixtures("eager_steps")  # a few steps of a small network: tracing them would cost more
def test_a_worker_times_its_rows_in_turn_and_a_failing_row_spares_the_next(capsys):
    """The worker as ``collect`` runs it for one backend (here in this process, whose backend is TensorFlow):
    one JSON row per requested row; a row that fails says why, with its traceback on stderr."""
    from pcfilter_lib.cli import workload_process

    asked = [{"model": "pointnet", "dtype_policy": "no_such_policy"}, {"model": "pointnet", "jit_compile": "false"}]
    assert workload_process.main(["--rows", json.dumps(asked), "--sizes", TINY.to_json()]) == 0
    out, err = capsys.readouterr()
    failed, timed = (json.loads(line) for line in out.splitlines())
    assert failed["model"] == "pointnet" and failed["skipped"].startswith("failed: ") and "no_such_policy" in err
    assert "skipped" not in timed and timed["jit_compile"] == "False" and timed["shape"] == [TINY.pointnet_points, 3]
    assert timed["train_s"] > 0 and timed["peak_rss_mb"] > 0
    with pytest.raises(SystemExit):
        workload_process.main(["--rows", '[{"model": "resnet"}]'])
    assert "--rows must be a JSON list" in capsys.readouterr().err


def test_rows_a_worker_did_not_print_in_time_say_so():
    rows = workloads.rows_in_subprocess("tensorflow", [("unet", {}), ("pointnet", {"jit_compile": False})],
                                        timeout=0.1, sizes=TINY)
    assert [(r["model"], r["backend"]) for r in rows] == [("unet", "tensorflow"), ("pointnet", "tensorflow")]
    assert all(r["skipped"] == "failed: not all rows within 0 s" for r in rows)


def test_sizes_reach_the_worker_intact_and_shape_the_workloads():
    assert workloads.Sizes.from_json(workloads.FAST.to_json()) == workloads.FAST
    with pytest.raises(ValueError, match="keys"):
        workloads.Sizes.from_json('{"epochs": 1}')
    fast, full = workloads.workload("unet", workloads.FAST), workloads.workload("unet")
    assert fast.shape == workloads.FAST.unet_input and full.shape == workloads.FULL.unet_input
    assert fast.samples < full.samples and fast.epochs < full.epochs
    assert workloads.workload("pointnet", workloads.FAST).shape == (workloads.FAST.pointnet_points, 3)
    with pytest.raises(ValueError, match="unknown model"):
        workloads.workload("resnet")


def _tensorflow_row(model: str) -> dict:
    """``model``'s row trained in this process as a worker process trains it (``runtime.setup``, then
    ``training_runs.run``, the row passed on as JSON), or, as from a worker, a row that says why it
    failed; in a worker process if this one's Keras runs another backend. Its steps run op by op, as
    under ``eager_steps``: tracing them would cost more than the few steps, and the row's numbers (the
    same losses) do not depend on it; the workloads' networks train in graph mode in other tests."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return workloads.run_in_subprocess("tensorflow", model, sizes=TINY)
    from pcfilter_lib import runtime

    runtime.setup(seed=None)
    from pcfilter_lib.timing import training_runs

    with op_by_op():
        try:
            return json.loads(json.dumps(training_runs.run(model, sizes=TINY)))
        except Exception as error:  # fails the tests of this row only
            return {"model": model, "backend": "tensorflow", "skipped": f"failed: {error!r}"}


@pytest.fixture(scope="module")
def rows():
    """The rows of the workloads this file checks: the U-Net on every installed backend, PointNet and
    the 3D U-Net on TensorFlow. Every other backend runs in its own process as ``collect`` runs it (a
    process's backend is fixed once Keras is imported), side by side with the TensorFlow rows, which
    train in this process: a fresh TensorFlow for each would only add its start-up."""
    others = [backend for backend in INSTALLED if backend != "tensorflow"]
    with ThreadPoolExecutor(max_workers=max(len(others), 1)) as pool:
        futures = {(backend, "unet"): pool.submit(workloads.run_in_subprocess, backend, "unet", sizes=TINY,
                                                  env=jax_backend.QUICK_XLA) for backend in others}
        here = {("tensorflow", model): _tensorflow_row(model) for model in ("unet", "pointnet", "voxel_unet")}
    return {**here, **{job: future.result() for job, future in futures.items()}}


@pytest.fixture(scope="module")
def unet_rows(rows):
    return {backend: row for (backend, model), row in rows.items() if model == "unet"}


def test_every_installed_backend_runs_the_unet_workload(unet_rows):
    assert "tensorflow" in unet_rows
    for backend, row in unet_rows.items():
        assert "skipped" not in row, row
        assert row["backend"] == backend and row["api"] in ("CPU", "CUDA")
        assert row["train_s"] > 0 and row["inference_s"] > 0 and row["matmul_gflops"] > 0
        assert row["shape"] == list(TINY.unet_input) and row["epochs"] == TINY.epochs


def test_backends_reach_comparable_losses(unet_rows):
    losses = {backend: row["final_loss"] for backend, row in unet_rows.items()}
    reference = losses["tensorflow"]
    assert all(abs(math.log(loss / reference)) < math.log(2) for loss in losses.values()), losses


def test_pointnet_workload_runs(rows):
    row = rows["tensorflow", "pointnet"]
    assert "skipped" not in row, row
    assert row["model"] == "pointnet" and math.isfinite(row["final_loss"])


def test_results_accumulate_and_format(tmp_path, unet_rows):
    device = {"cpu": "test cpu", "cores": 2, "gpus": []}
    rows = [{**row, "device": device} for row in unet_rows.values()]
    rows.append({"model": "unet", "backend": "torch", "skipped": "torch is not installed", "device": device})
    path = tmp_path / "results.json"
    workloads.append_results(path, rows[:1])
    everything = workloads.append_results(path, rows[1:])
    assert len(json.loads(path.read_text())) == len(everything) == len(rows)
    table = workloads.format_table(everything)
    assert "| device | API | backend |" in table and "skipped: torch is not installed" in table
    # Against one peak for the whole table, each ran row's share is its own GFLOP/s over that peak.
    ran = [row for row in everything if "skipped" not in row]
    one_peak = 2 * max(row["train_gflops"] for row in ran)
    shares = [line.rsplit("|", 2)[-2].strip() for line in
              workloads.format_table(everything, peak=one_peak).splitlines()[2:]]
    assert shares[:len(ran)] == [f"{row['train_gflops'] / one_peak:.0%}" for row in ran]
    assert f"share of {one_peak:.0f} GFLOP/s" in workloads.format_table(ran, peak=one_peak)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a results file"):
        workloads.append_results(tmp_path / "bad.json", rows)


def test_the_3d_workloads_train_and_count_their_3d_convolutions(rows):
    for model in ("voxel_unet", "yovo"):
        assert model in workloads.CPU_MODELS and model not in workloads.MODELS  # not in `pcfilter bench`
    assert workloads.workload("yovo", workloads.FAST).shape == (64, 64, 3)
    assert workloads.workload("voxel_unet", workloads.FAST).shape[:3] == (workloads.FAST.voxel_grid,) * 3
    spec = workloads.workload("voxel_unet", TINY)
    assert spec.shape[:3] == (TINY.voxel_grid,) * 3
    # YOVO's run is the same code with another network, trained by benchmarks/training_cpu.py (20 s here)
    row = rows["tensorflow", "voxel_unet"]
    assert "skipped" not in row, row
    assert row["shape"] == list(spec.shape) and math.isfinite(row["final_loss"])
    assert row["train_s"] > 0 and row["train_gflops"] > 0  # zero if the 3D convolutions went uncounted


def test_model_flops_counts_3d_convolutions_as_their_2d_formula_does():
    import keras

    from pcfilter_lib.timing import clock

    inputs = keras.Input((8, 8, 8, 3))
    conv = keras.layers.Conv3D(4, 3, padding="same")(inputs)
    up = keras.layers.Conv3DTranspose(2, 2, strides=2)(conv)
    model = keras.Model(inputs, up)
    # 8^3 outputs of 3^3 x 3 products for each of 4 filters; then 8^3 inputs scattering 2^3 x 2 from 4 channels
    assert clock.model_flops(model, (8, 8, 8, 3)) == 2 * 8**3 * 27 * 3 * 4 + 2 * 8**3 * 8 * 4 * 2
