"""Training: the one fit helper, its timing / progress callback and result type, the segmentation and
classifier loops built on it, on one device and data-parallel over two CPU devices."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pcfilter_lib.data.synthetic2d import make_scratches
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import fit as training
from pcfilter_lib.nn import losses
from pcfilter_lib.nn.callbacks import EpochTimer, SoftThreshold, feeds_batch_norm
from pcfilter_lib.timing import workloads


def _classifier(compiled: bool = True) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    if compiled:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, np.argmax(x[:, :3], axis=1)  # a learnable rule


def test_fit_records_one_history_entry_and_one_time_per_epoch():
    result = training.fit(_classifier(), _data(), validation=_data(seed=1), test=_data(seed=2), epochs=3, batch_size=8)
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 and all(isinstance(v, float) for v in values) for values in result.history.values())
    assert result.epochs == len(result.epoch_seconds) == 3 and min(result.epoch_seconds) > 0
    assert sum(result.epoch_seconds) <= result.seconds  # the epochs lie inside the timed call
    assert result.elapsed == pytest.approx(np.cumsum(result.epoch_seconds))
    assert set(result.test) == {"loss", "accuracy"} and 0 <= result.test["accuracy"] <= 1


class _Batches(keras.utils.PyDataset):  # the kind of input the recipes pass
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x) // 8

    def __getitem__(self, i):
        return self.x[8 * i: 8 * i + 8], self.y[8 * i: 8 * i + 8]


@pytest.mark.parametrize("kind", ["arrays", "PyDataset", "tf.data"])
def test_fit_traces_the_training_step_once(kind):
    # Keras calls train_step only while tracing it. Metric, loss or optimizer variables created
    # inside the first trace would make TensorFlow trace the step a second time.
    x, y = _data()
    train = {"arrays": (x, y), "PyDataset": _Batches(x, y),
             "tf.data": tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}[kind]
    model, traces = _classifier(), []
    step = model.train_step

    def counted(data):
        traces.append(data)
        return step(data)

    model.train_step = counted
    result = training.fit(model, train, epochs=2, batch_size=8 if kind == "arrays" else None,
                          shuffle=kind != "tf.data")  # a tf.data dataset shuffles itself
    assert len(traces) == 1 and result.epochs == 2 and model.optimizer.built


def test_fit_takes_a_dataset_and_sample_weights():
    x, y = _data()
    assert training.fit(_classifier(), _Batches(x, y), epochs=2).epochs == 2
    weighted = training.fit(_classifier(), (x, y, np.ones(len(y), "float32")), epochs=1, batch_size=16)
    assert len(weighted.history["loss"]) == 1


def test_seconds_per_epoch_leaves_out_the_first_epoch():
    result = training.TrainResult(model=None, epoch_seconds=[5.0, 1.0, 2.0, 3.0])
    assert result.seconds_per_epoch == 2.0 and result.elapsed == [5.0, 6.0, 8.0, 11.0]
    assert training.TrainResult(model=None, epoch_seconds=[4.0]).seconds_per_epoch == 4.0


def test_the_bar_is_quiet_without_progress_and_shows_the_loss_with_it(capsys):
    training.fit(_classifier(), _data(), epochs=2, batch_size=16)
    assert capsys.readouterr().err == ""
    training.fit(_classifier(), _data(), validation=_data(seed=1), epochs=2, batch_size=16, progress=True,
                 desc="demo")
    err = capsys.readouterr().err
    assert "demo" in err and "2/2" in err and "loss=" in err and "val_accuracy=" in err


def test_soft_threshold_sets_weights_exactly_to_zero_and_keeps_the_rest_clear_of_it():
    x, y = _data(96)
    x = np.concatenate([x, np.random.default_rng(5).normal(size=(96, 12)).astype("float32")], axis=1)  # noise
    kernels = {}
    for alpha in (0.0, 2.0):  # Adam's default step 1e-3: tau = 2e-3 per step
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, activation="softmax", name="out")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        threshold = SoftThreshold(alpha, layers=["hidden"])
        model.fit(x, y, epochs=20, batch_size=16, verbose=0, callbacks=[threshold])
        kernels[alpha] = (model.get_layer("hidden").kernel.numpy(), model.get_layer("out").kernel.numpy())
        np.testing.assert_allclose(threshold.taus, alpha * 1e-3, rtol=1e-6)
    hidden, out = kernels[2.0]
    assert np.mean(hidden == 0) > 0.2 and np.all(kernels[0.0][0] != 0)
    assert np.all(out != 0)  # only the named layer is thresholded
    with pytest.raises(ValueError, match="alpha must be"):
        SoftThreshold(-1.0)


def test_soft_threshold_follows_the_learning_rate_schedule_step_by_step():
    # tau_t = eta_t * alpha with the rate of the step just taken: a cosine schedule ends near zero,
    # and so does the threshold, instead of pulling at full strength when the loss's steps have stopped.
    x, y = _data(64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    steps = 3 * 4  # 3 epochs of 4 batches
    schedule = keras.optimizers.schedules.CosineDecay(0.05, steps)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="sparse_categorical_crossentropy")
    threshold = SoftThreshold(0.1)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[threshold])
    expected = [0.1 * float(schedule(step)) for step in range(steps)]
    np.testing.assert_allclose(threshold.taus, expected, rtol=1e-5, atol=1e-9)
    assert threshold.taus[0] == pytest.approx(5e-3) and threshold.taus[-1] < 0.03 * threshold.taus[0]
    rebuilt = SoftThreshold(**threshold.get_config())
    assert (rebuilt.alpha, rebuilt.layer_names) == (0.1, None)


def test_soft_threshold_leaves_layers_before_batch_norm_alone_unless_named():
    # Batch norm divides out the scale of the layer before it, so the loss cannot resist a threshold
    # that shrinks all of its weights: by default only the layers outside batch norm are thresholded.
    x, y = _data(96)
    def normed_model():
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(16, use_bias=False, name="hidden")(inputs)
        normed = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name="bn")(hidden))
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(normed))

    kernels = {}
    for layers in (None, ["hidden", "out"]):
        keras.utils.set_random_seed(0)
        model = normed_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=10, batch_size=16, verbose=0, callbacks=[SoftThreshold(2.0, layers=layers)])
        kernels[layers is None] = (model.get_layer("hidden").kernel.numpy(), model.get_layer("out").kernel.numpy())
    assert feeds_batch_norm(model, model.get_layer("hidden")) and not feeds_batch_norm(model, model.get_layer("out"))
    (hidden_default, out_default), (hidden_named, _) = kernels[True], kernels[False]
    assert np.all(hidden_default != 0) and np.mean(out_default == 0) > 0.1
    assert np.mean(hidden_named == 0) > 0.2
    only_normed = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                                    keras.layers.BatchNormalization()])
    only_normed.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="outside batch normalisation"):
        only_normed.fit(x, np.zeros((96, 3), "float32"), epochs=1, verbose=0, callbacks=[SoftThreshold(1.0)])


def test_epoch_timer_counts_epochs_even_when_silent():
    timer = EpochTimer(epochs=2, progress=False)
    model = _classifier()
    model.fit(*_data(), epochs=2, batch_size=16, verbose=0, callbacks=[timer])
    assert len(timer.epoch_seconds) == 2 and timer.epoch_bar.disable


def test_bad_arguments_are_refused_before_training():
    x, y = _data()
    model = _classifier()
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        training.fit(model, (x, y), epochs=0)
    with pytest.raises(ValueError, match="is not compiled"):
        training.fit(_classifier(compiled=False), (x, y), epochs=1)
    with pytest.raises(ValueError, match="same number of samples, got x 48, y 47"):
        training.fit(model, (x, y[:-1]), epochs=1)
    with pytest.raises(ValueError, match="train is None"):
        training.fit(model, None, epochs=1)
    with pytest.raises(ValueError, match=r"\(x, y\) or \(x, y, sample_weight\)"):
        training.fit(model, (x,), epochs=1)
    with pytest.raises(ValueError, match="validation holds no samples"):
        training.fit(model, (x, y), validation=(x[:0], y[:0]), epochs=1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        training.fit(model, (x, y), epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="progress bar .* or Keras' log"):
        training.fit(model, (x, y), epochs=1, progress=True, verbose=1)
    with pytest.raises(TypeError, match="keras.callbacks.Callback"):
        training.fit(model, (x, y), epochs=1, callbacks=[print])
    with pytest.raises(TypeError, match="must be a keras.Model"):
        training.fit(lambda: model, (x, y), epochs=1)
    assert model.optimizer.iterations.numpy() == 0  # nothing trained


def test_classifier_training_scores_the_test_set():
    train, test = _data(96), _data(48, seed=3)
    result = training.train_classifier(_classifier(compiled=False), train, test, epochs=4, batch_size=16)
    assert isinstance(result, training.TrainResult) and result.test["accuracy"] > 1 / 3
    assert result.history["accuracy"][-1] > result.history["accuracy"][0]


@pytest.mark.usefixtures("eager_steps")  # the history's bookkeeping; the U-Net trains in graph mode below
def test_segmentation_training_records_history_and_time():
    data = make_scratches(16, 32, seed=1)
    result = training.train_segmentation(build_unet(input_channels=2, depth=2, filters=(4, 8, 8)),
                                         losses.BinaryCrossentropy(), (data.images, data.labels, data.weights),
                                         validation=(data.images, data.labels, data.weights), epochs=2, batch_size=8)
    assert len(result.history["loss"]) == 2 and "val_mean_iou" in result.history
    assert result.seconds > 0 and len(result.epoch_seconds) == 2


def test_segmentation_arguments_are_refused():
    model = build_unet(input_channels=2, depth=2, filters=(4, 8, 8))
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        training.train_segmentation(model, losses.BinaryCrossentropy(), None, epochs=0)
    with pytest.raises(ValueError, match="pass a function that builds the model"):
        training.train_segmentation(model, losses.BinaryCrossentropy(), None, strategy=object())


def test_mirrored_strategy_on_two_cpu_devices_follows_the_single_device_loss_curve():
    curves = workloads.data_parallel_in_subprocess(epochs=2, sizes=workloads.FAST)
    assert curves["replicas"] == 2 and len(curves["devices"]) == 2
    assert curves["one"] == pytest.approx(curves["mirrored"], rel=1e-4)
    assert curves["one"][-1] < curves["one"][0]


class _ShuffledBatches(keras.utils.PyDataset):
    """Six batches of ``_data``, reordered by a seeded generator after every epoch."""

    def __init__(self):
        super().__init__()
        self.x, self.y = _data(48)
        self.rng, self.order = np.random.default_rng(5), np.arange(6)
        self.epochs_ended = 0

    def __len__(self):
        return 6

    def __getitem__(self, index):
        rows = slice(8 * self.order[index], 8 * self.order[index] + 8)
        return self.x[rows], self.y[rows]

    def on_epoch_end(self):
        self.order = self.rng.permutation(6)
        self.epochs_ended += 1


def test_fit_feeds_keras_own_batches_with_tf_data_autotuning_off():
    ours, theirs = _ShuffledBatches(), _ShuffledBatches()
    result = training.fit(_classifier(), ours, validation=_data(seed=1), epochs=3)
    model = _classifier()
    history = model.fit(theirs, validation_data=_data(seed=1), epochs=3, verbose=0, shuffle=True)
    # Keras's own pipeline, hooks and batch order: the same curve, the same epoch hooks called.
    assert result.history["loss"] == pytest.approx(history.history["loss"], rel=1e-5)
    assert result.history["val_loss"] == pytest.approx(history.history["val_loss"], rel=1e-5)
    assert ours.epochs_ended == theirs.epochs_ended == 4  # Keras also calls it as fit starts
    pipeline = training._untuned(_ShuffledBatches(), None, shuffle=False).get_tf_dataset()
    assert pipeline.options().autotune.enabled is False
    x, y = _data()
    arrays = training._untuned((x, y, None), 8, shuffle=False)
    assert arrays.get_tf_dataset().options().autotune.enabled is False and arrays.num_batches == 6
    assert training._untuned(tf.data.Dataset.from_tensor_slices((x, y)), None, False) is not None
