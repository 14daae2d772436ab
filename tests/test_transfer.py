"""Transfer learning: freezing, a new head, fine-tuning, weights loaded into a fresh network, the strategy
experiment, global features, and their table and plots."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib import viz
from pcfilter_lib.data.modelnet import Clouds, select_classes
from pcfilter_lib.experiments.transfer_strategies import STRATEGIES, compare_strategies, new_classes
from pcfilter_lib.models import classify, pointnet
from pcfilter_lib.nn.fit import TrainResult, fit
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
    fields = ("num_points", "epochs", "head_epochs", "tune_epochs", "batch_size")
    assert all(getattr(transfer.FAST, f) < getattr(transfer.FULL, f) for f in fields)
    assert transfer.FULL.limit_per_class is None and transfer.FAST.limit_per_class > 0
    with pytest.raises(AttributeError):
        transfer.FULL.epochs = 1  # frozen: a run cannot change the shared preset


def test_long_runs_compile_their_step_with_xla_and_short_ones_do_not():
    long_run = classify.compile_classifier(_build(2), steps=classify.XLA_FROM_STEPS)
    short_run = classify.compile_classifier(_build(2), steps=classify.XLA_FROM_STEPS - 1)
    assert long_run.jit_compile is True
    keras_choice = _build(2)
    keras_choice.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # "auto": off on CPUs
    assert short_run.jit_compile == keras_choice.jit_compile
    x = _clouds(2).points[:4]
    y = np.zeros(len(x), np.int32)
    # The XLA step runs PointNet, through the library's loop as classify.train runs it: that loop creates
    # the step's variables first, so the step is traced and compiled once (train_on_batch traced it twice).
    run = fit(long_run, (x, y), epochs=1, batch_size=len(x), shuffle=False)
    assert np.isfinite(run.history["loss"][0])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = _build(len(CLASSES))
    run = classify.train(model, _clouds(), None, epochs=2, batch_size=8)
    assert isinstance(run, TrainResult) and run.model is model
    assert len(run.epoch_seconds) == len(run.history["loss"]) == 2 and run.seconds >= run.elapsed[-1] > 0
    return classify.save_model(model, tmp_path_factory.mktemp("w") / "pre.keras")


def _pretrained_copy(path):
    return lambda: keras.models.load_model(path)


def test_replace_head_freezes_the_extractor_and_head_training_leaves_it(pretrained):
    model = classify.replace_head(keras.models.load_model(pretrained), 3)
    assert model.output_shape == (None, 3)
    new = ("b", "c", "d")
    trainable = {w.path for w in model.trainable_weights}
    assert trainable and all(path.startswith("new_head") for path in trainable)
    extractor = [w.numpy().copy() for w in pointnet.feature_extractor(model).weights]
    # Without validation clouds: only the training step is traced (train's validation: the strategies test).
    run = classify.train(model, select_classes(_clouds(4), new), None, epochs=1)
    assert run.history["loss"]
    for before, after in zip(extractor, pointnet.feature_extractor(model).weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_unfreezing_trains_every_layer_but_keeps_batchnorm_statistics(pretrained):
    model = classify.replace_head(keras.models.load_model(pretrained), 4)
    classify.set_trainable(model, True)
    conv = model.get_layer("mlp1_0_conv").kernel.numpy().copy()
    bn = model.get_layer("mlp1_0_bn").moving_mean.numpy().copy()
    classify.train(model, _clouds(4), None, epochs=1, learning_rate=1e-4)
    assert not np.array_equal(conv, model.get_layer("mlp1_0_conv").kernel.numpy())
    np.testing.assert_array_equal(bn, model.get_layer("mlp1_0_bn").moving_mean.numpy())


def test_load_weights_into_a_fresh_network_gives_the_saved_predictions(pretrained):
    saved = keras.models.load_model(pretrained)
    fresh = _build(len(CLASSES))
    fresh.load_weights(pretrained)
    clouds = _clouds(2, seed=3).points
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fresh(clouds, training=False)),
                               keras.ops.convert_to_numpy(saved(clouds, training=False)), rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("eager_steps")
def test_compare_strategies_reports_every_fraction_and_strategy(pretrained):
    data = _clouds(2)  # one batch of 8 at either fraction: the report's rows do not need more steps
    lines = []
    results = compare_strategies(_pretrained_copy(pretrained), data, _clouds(2, seed=1),
                                 _clouds(3, seed=2), fractions=(0.5, 1.0), scratch_epochs=1,
                                 head_epochs=1, tune_epochs=1, batch_size=8, build=_build,
                                 progress=lines.append)
    assert [(r.fraction, r.strategy) for r in results] == [(f, s) for f in (0.5, 1.0) for s in STRATEGIES]
    assert [r.train_size for r in results] == [4] * 3 + [8] * 3
    for r in results:
        assert 0 <= r.accuracy <= 1 and r.seconds > 0
        assert r.seconds == pytest.approx(sum(run.seconds for run in r.runs))
        assert all("val_accuracy" in run.history for run in r.runs)  # every run scored the validation clouds
    tuned = [r for r in results if r.strategy == "fine-tuned"]
    assert all(len(r.runs) == 2 and r.runs[1].epochs == 1 for r in tuned)
    assert len(lines) == 2 and all(s in lines[0] for s in STRATEGIES)
    table = viz.strategy_table(results)
    assert table.header == ["data", "clouds"] + [f"{s} {u}" for s in STRATEGIES
                                                 for u in ("accuracy", "seconds")]
    assert [row[:2] for row in table.rows] == [["50%", "4"], ["100%", "8"]]
    assert table.rows[1][2] == f"{results[3].accuracy:.3f}" and str(table).startswith("| data |")
    fig = viz.plot_strategies(results)
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [2, 2, 2]
    plt.close(fig)


def test_global_features_are_the_extractors_outputs(pretrained):
    model = keras.models.load_model(pretrained)
    clouds = _clouds(3, seed=5)
    features = classify.global_features(model, clouds, batch_size=5)
    expected = keras.ops.convert_to_numpy(pointnet.feature_extractor(model)(clouds.points, training=False))
    assert features.shape == (len(clouds), model.get_layer(pointnet.GLOBAL_FEATURE).output.shape[-1])
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_weight_histograms_count_the_weights_near_zero():
    kernels = {"sparse": np.r_[np.zeros(90), np.ones(10)], "dense": np.linspace(-1, 1, 100)}
    fig = viz.plot_weight_histograms(kernels, near_zero=1e-3)
    assert [ax.get_title().splitlines() for ax in fig.axes] == [["sparse", "90% within 0.001 of 0"],
                                                               ["dense", "0% within 0.001 of 0"]]
    plt.close(fig)


@pytest.mark.usefixtures("eager_steps")
def test_new_classes_pretrains_on_some_classes_and_learns_the_others_three_ways():
    result = new_classes(_clouds(4), _clouds(2, seed=1), _clouds(3, seed=2), ("a", "b"), ("c", "d"),
                         build=_build, epochs=1, head_epochs=1, tune_epochs=1, batch_size=8)
    assert result.old_classes == ("a", "b") and result.new_classes == ("c", "d")
    assert 0 <= result.pretrain_accuracy <= 1 and result.pretrain_seconds > 0
    assert [r.strategy for r in result.results] == list(STRATEGIES)
    assert all(r.train_size == 8 and 0 <= r.accuracy <= 1 for r in result.results)
    # The test clouds of the new classes only: accuracy is a multiple of 1/6.
    assert all(abs(r.accuracy * 6 - round(r.accuracy * 6)) < 1e-9 for r in result.results)


@pytest.mark.parametrize(("old", "new"), [(("a", "b"), ("b", "c")), ((), ("c",))])
def test_new_classes_refuses_overlapping_or_empty_class_sets(old, new):
    with pytest.raises(ValueError, match="non-empty and disjoint"):
        new_classes(_clouds(2), None, _clouds(2), old, new, build=_build, epochs=1, head_epochs=1,
                    tune_epochs=1)


def test_with_batch_statistics_keeps_one_batchs_moments_and_leaves_the_model_alone():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="features")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.BatchNormalization(name="bn")(hidden))
    model = keras.Model(inputs, outputs)
    before = [w.copy() for w in model.get_weights()]
    batch = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 3)).astype(np.float32)

    copy = classify.with_batch_statistics(model, batch)

    features = keras.ops.convert_to_numpy(model.get_layer("features")(batch))
    norm = copy.get_layer("bn")
    np.testing.assert_allclose(norm.moving_mean.numpy(), features.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), features.var(axis=0), rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert model.get_layer("bn").momentum == 0.99  # the original's layers are untouched
    # A copy reused for another batch holds that batch's moments alone.
    other = batch[:8] * 2.0
    again = classify.with_batch_statistics(model, other, copy=copy)
    features = keras.ops.convert_to_numpy(model.get_layer("features")(other))
    assert again is copy
    np.testing.assert_allclose(norm.moving_mean.numpy(), features.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_a_tiny_last_batch_makes_pointnets_statistics_worse_than_its_running_averages(pretrained):
    model = keras.models.load_model(pretrained)
    clouds = _clouds(4, seed=3)
    one_cloud = classify.with_batch_statistics(model, clouds.points[:1])
    assert classify.mean_loss(one_cloud, clouds) > classify.mean_loss(model, clouds)


@pytest.mark.usefixtures("eager_steps")
def test_a_baseline_trained_from_scratch_is_shipped_for_its_data_budget_and_share_only(tmp_path):
    from dataclasses import replace

    from pcfilter_lib import config
    from pcfilter_lib.data import modelnet

    settings = replace(transfer.FAST, epochs=1, head_epochs=1, tune_epochs=1, limit_per_class=3, num_points=64)
    card = transfer.train_reference_scratch(tmp_path, config.data_dir(), "newclasses", 1.0, settings, "fast",
                                            progress=False)
    card.write((tmp_path / card.model).with_suffix(".json"))
    root, _ = modelnet.ensure_dataset(config.data_dir(), "fast")
    clouds = {split: modelnet.load_split(root, split, settings.num_points, limit_per_class=3)
              for split in ("train", "test")}
    train_set, val_set = modelnet.split_validation(clouds["train"], 0.1, seed=0)
    _, new = transfer.practical_classes(train_set.classes)
    assert card.model == transfer.scratch_path("newclasses", 1.0).name and card.data["classes"] == list(new)
    shipped = transfer.shipped_scratch(root, settings, new, "newclasses", weights=tmp_path)
    assert shipped(0.5) is None  # no network for another share
    assert transfer.shipped_scratch(root, replace(settings, epochs=2), new, "newclasses", weights=tmp_path)(1.0) is None
    run = shipped(1.0)
    assert run.seconds == card.training_seconds and run.history == card.history
    assert shipped(1.0) is run  # loaded once
    parts = [modelnet.select_classes(c, new) for c in (train_set, val_set, clouds["test"])]
    results = compare_strategies(lambda: transfer.build_practical(settings)(len(new)), *parts,
                                 fractions=(1.0,), scratch_epochs=1, head_epochs=1, tune_epochs=1,
                                 batch_size=settings.batch_size, build=transfer.build_practical(settings),
                                 scratch_runs=shipped)
    scratch = results[-1]
    assert scratch.strategy == "from scratch" and scratch.seconds == card.training_seconds
    assert scratch.accuracy == pytest.approx(card.test["accuracy"], abs=1e-4)
    with pytest.raises(ValueError, match="no chapter baseline"):
        transfer.train_reference_scratch(tmp_path, config.data_dir(), "scans", 0.5, settings, "fast")


@pytest.mark.usefixtures("eager_steps")
def test_the_practicals_pretrained_network_is_shipped_for_its_data_and_budget_only(tmp_path):
    from dataclasses import replace

    from pcfilter_lib.data import modelnet

    settings = replace(transfer.FAST, epochs=1, head_epochs=1, tune_epochs=1, limit_per_class=3, num_points=64)
    card = transfer.train_reference_old_classes(tmp_path / "w", tmp_path, settings, "fast", progress=False)
    path = tmp_path / "w" / card.model
    card.write(path.with_suffix(".json"))
    root, _ = modelnet.ensure_dataset(tmp_path, "fast")
    clouds = {split: modelnet.load_split(root, split, settings.num_points, limit_per_class=3)
              for split in ("train", "test")}
    train_set, val_set = modelnet.split_validation(clouds["train"], 0.1, seed=0)
    old, new = transfer.practical_classes(train_set.classes)
    assert card.target == "pointnetoldclasses" and card.data["classes"] == list(old) and len(old) == 5
    assert transfer.shipped_old_classes(root, replace(settings, epochs=2), old, path=path) is None
    assert transfer.shipped_old_classes(root, settings, new, path=path) is None
    pretrained = transfer.shipped_old_classes(root, settings, old, path=path)
    assert pretrained is not None and pretrained[1] == card.training_seconds
    # One batch of the new classes' clouds per epoch, as the pretraining had of the old ones.
    result = new_classes(train_set, val_set, clouds["test"], old, new, transfer.build_practical(settings),
                         epochs=1, head_epochs=1, tune_epochs=1, batch_size=settings.batch_size,
                         pretrained=pretrained)
    assert result.pretrain_seconds == card.training_seconds
    assert result.pretrain_accuracy == pytest.approx(card.test["accuracy"], abs=1e-4)
    assert [r.strategy for r in result.results] == list(STRATEGIES)


@pytest.mark.usefixtures("eager_steps")
def test_the_transfer_strategies_networks_are_shipped_for_their_start_data_and_budget_only(tmp_path, pretrained):
    from dataclasses import replace

    from pcfilter_lib import config

    settings = replace(transfer.FAST, epochs=1, head_epochs=1, tune_epochs=1, limit_per_class=3, num_points=64)
    fresh = _pretrained_copy(pretrained)
    cards = transfer.train_reference_transfer(tmp_path, config.data_dir(), "scans", 0.1, (pretrained, fresh),
                                              settings, "fast", progress=False)
    for card in cards:
        card.write((tmp_path / card.model).with_suffix(".json"))
    strategies = ("new head", "fine-tuned")
    assert [c.model for c in cards] == [transfer.transfer_path("scans", 0.1, s).name for s in strategies]
    assert {c.target for c in cards} == {"pointnettransferscans10"}
    root, _, train_set, val_set, test_set = transfer.task_clouds(config.data_dir(), "scans", settings, "fast")
    shipped = transfer.shipped_transfer(root, settings, train_set.classes, "scans", pretrained, weights=tmp_path)
    assert shipped(1.0) is None  # no networks for another share
    other = classify.save_model(_build(len(CLASSES)), tmp_path / "other.keras")
    assert transfer.shipped_transfer(root, settings, train_set.classes, "scans", other, weights=tmp_path)(0.1) is None
    assert transfer.shipped_transfer(root, replace(settings, head_epochs=2), train_set.classes, "scans", pretrained,
                                     weights=tmp_path)(0.1) is None
    head, tune = shipped(0.1)
    assert head.seconds == cards[0].training_seconds and tune.history == cards[1].history
    results = compare_strategies(fresh, train_set, val_set, test_set, fractions=(0.1,), scratch_epochs=1,
                                 head_epochs=1, tune_epochs=1, batch_size=settings.batch_size,
                                 build=transfer.build_practical(settings), transfer_runs=shipped)
    by = {r.strategy: r for r in results}
    assert by["new head"].accuracy == pytest.approx(cards[0].test["accuracy"], abs=1e-4)
    assert by["fine-tuned"].accuracy == pytest.approx(cards[1].test["accuracy"], abs=1e-4)
    assert by["fine-tuned"].seconds == pytest.approx(cards[0].training_seconds + cards[1].training_seconds)
    with pytest.raises(ValueError, match="none for 'newclasses'"):
        transfer.train_reference_transfer(tmp_path, config.data_dir(), "newclasses", 1.0, (pretrained, fresh),
                                          settings, "fast")
