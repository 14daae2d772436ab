"""RAdam, Lookahead and Ranger: the update rules against NumPy references, training, saving, JAX."""

from __future__ import annotations

import jax_backend
import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

import keras

from pcfilter_lib.nn.optimizers import LookaheadAdam, RAdam, Ranger, make_optimizer, rectification

TARGET = np.array([1.0, -2.0, 3.0, 0.5])
CURVATURE = np.array([1.0, 0.5, 2.0, 4.0])


def _gradient(w):
    """Gradient of sum(CURVATURE * (w - TARGET)^2): a tiny problem with one minimum at TARGET."""
    return 2 * CURVATURE * (w - TARGET)


def reference(steps, lr, inner="radam", b1=0.9, b2=0.999, eps=1e-8, threshold=5.0, k=None, alpha=0.5):
    """The published update rules in NumPy (float64): RAdam (Liu et al. 2020, Algorithm 2 with the
    authors' threshold) or Keras' Adam, optionally inside Lookahead (Zhang et al. 2019, Algorithm 1).
    Returns the weights after each step and which steps were rectified."""
    w = np.zeros_like(TARGET)
    m, v, slow = np.zeros_like(w), np.zeros_like(w), w.copy()
    rho_inf = 2 / (1 - b2) - 1
    trajectory, rectified = [], []
    for t in range(1, steps + 1):
        g = _gradient(w)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        if inner == "adam":
            w = w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        else:
            m_hat = m / (1 - b1**t)
            rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
            rectified.append(rho > threshold)
            if rho > threshold:
                r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
                w = w - lr * r * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
            else:
                w = w - lr * m_hat
        if k and t % k == 0:  # k fast steps, then the slow weights move alpha of the way
            slow = slow + alpha * (w - slow)
            w = slow.copy()
        trajectory.append(w.copy())
    return np.array(trajectory), np.array(rectified)


def run(optimizer, steps):
    """Apply ``optimizer`` to the tiny problem, one gradient at a time; the weights after each step."""
    variable = keras.Variable(np.zeros_like(TARGET, dtype=np.float32))
    trajectory = []
    for _ in range(steps):
        gradient = _gradient(keras.ops.convert_to_numpy(variable).astype(np.float64)).astype(np.float32)
        optimizer.apply([gradient], [variable])
        trajectory.append(keras.ops.convert_to_numpy(variable).copy())
    return np.array(trajectory)


def test_radam_follows_its_update_rule_through_both_phases():
    expected, rectified = reference(12, 0.1)
    assert not rectified[0] and rectified[-1]  # momentum steps first, rectified Adam steps later
    np.testing.assert_allclose(run(RAdam(0.1), 12), expected, rtol=1e-4, atol=1e-5)


def test_ranger_follows_lookahead_around_radam():
    expected, _ = reference(10, 0.1, k=3, alpha=0.5)
    np.testing.assert_allclose(run(Ranger(0.1, sync_period=3, slow_step_size=0.5), 10), expected, rtol=1e-4,
                               atol=1e-5)
    # Without the synchronisations it would be plain RAdam, which ends elsewhere.
    assert not np.allclose(reference(10, 0.1)[0][-1], expected[-1], atol=1e-3)


def test_lookahead_adam_follows_lookahead_around_keras_adam():
    expected, _ = reference(9, 0.05, inner="adam", eps=1e-7, k=4, alpha=0.3)
    np.testing.assert_allclose(run(LookaheadAdam(0.05, sync_period=4, slow_step_size=0.3), 9), expected,
                               rtol=1e-4, atol=1e-5)


def test_lookahead_with_alpha_one_is_its_inner_optimizer():
    np.testing.assert_allclose(run(Ranger(0.1, sync_period=2, slow_step_size=1.0), 8), run(RAdam(0.1), 8), atol=1e-6)


def _regression(seed=0, n=256):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + 0.3).astype(np.float32)


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


@pytest.mark.parametrize("name", ["radam", "ranger", "lookahead_adam"])
def test_optimizers_reduce_a_simple_loss_in_fit(name):
    x, y = _regression()
    model = _model()
    model.compile(make_optimizer(name, 0.1), "mse")
    # 240 steps: RAdam's rectification keeps its steps small for a few hundred (about 1 / (1 - beta_2))
    # steps, and Lookahead pulls the weights half way back every 6, so Ranger is the slowest of the three.
    # Epochs of 8 steps drawn from one repeated, reshuffled dataset: fit on arrays builds their pipeline anew
    # every epoch, most of the time of so small a step.
    import tensorflow as tf

    batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(32).repeat()
    history = model.fit(batches, epochs=30, steps_per_epoch=len(x) // 32, shuffle=False,
                        verbose=0).history["loss"]
    assert len(history) == 30 and history[-1] < 0.1 * history[0]


def test_fit_synchronises_fast_and_slow_weights_every_k_steps():
    x, y = _regression()
    model = _model()
    optimizer = Ranger(0.02, sync_period=4)
    model.compile(optimizer, "mse")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # 8 steps: the last one synchronised
    for variable in model.trainable_variables:
        slow = optimizer._slow_weights[optimizer._get_variable_index(variable)]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(slow), keras.ops.convert_to_numpy(variable))
    model.fit(x[:32 * 3], y[:32 * 3], batch_size=32, epochs=1, verbose=0)  # 3 more: mid-cycle, they differ
    assert any(not np.array_equal(keras.ops.convert_to_numpy(optimizer._slow_weights[i]), keras.ops.convert_to_numpy(v))
               for i, v in enumerate(model.trainable_variables))


def test_a_model_compiled_with_ranger_saves_and_loads(tmp_path):
    x, y = _regression()
    model = _model()
    model.compile(Ranger(0.01, sync_period=5, slow_step_size=0.4), "mse")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, Ranger)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # Training goes on from the same state: both take the same next steps.
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _operations_per_variable(optimizer_class) -> float:
    """Operations that one more variable adds to a traced update step (TensorFlow backend)."""
    tf = pytest.importorskip("tensorflow")

    def count(n):
        variables = [keras.Variable(np.zeros(3, np.float32)) for _ in range(n)]
        optimizer = optimizer_class(0.1)
        optimizer.build(variables)
        step = tf.function(lambda: optimizer.apply([tf.ones(3)] * n, variables))
        return len(step.get_concrete_function().graph.get_operations())

    return (count(11) - count(1)) / 10


def test_a_step_computes_its_scalars_once_not_once_per_variable():
    # Bias corrections, rho_t, r_t and Lookahead's cycle are shared by all variables. Computed per
    # variable they cost RAdam 74 and Ranger 122 operations a variable, which made tracing YOVO's
    # training step take twice as long; Keras' Adam takes 40.
    assert _operations_per_variable(RAdam) < 35
    assert _operations_per_variable(Ranger) < 55


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rectify_threshold"):
        RAdam(rectify_threshold=4.0)
    with pytest.raises(ValueError, match="sync_period"):
        Ranger(sync_period=0)
    with pytest.raises(ValueError, match="slow_step_size"):
        Ranger(slow_step_size=0.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd")


# Under JAX (tests/jax_backend.py runs it in one JAX process with the other test files' JAX sides).
jax_backend.declare("optimizers", __file__, lambda folder: None, """
    from pcfilter_lib.nn.activations import DropBlock, Mish
    from pcfilter_lib.nn.optimizers import Ranger
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 2)).astype("float32")
    y = x.mean(axis=(1, 2, 3))[:, None].astype("float32")
    inputs = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    h = DropBlock(0.1, 2)(h)
    h = Mish()(h)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    optimizer = Ranger(0.01, sync_period=4)
    model.compile(optimizer, "mse")
    loss = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history["loss"]  # 24 steps
    synchronised = all(np.array_equal(np.asarray(optimizer._slow_weights[optimizer._get_variable_index(v)]),
                                      np.asarray(v)) for v in model.trainable_variables)
    out = {"backend": keras.backend.backend(), "loss": [float(v) for v in loss], "synchronised": synchronised}
""")


def test_the_layers_and_ranger_run_on_the_jax_backend(request):
    pytest.importorskip("jax")
    _, out = jax_backend.numbers("optimizers", request)
    assert out["backend"] == "jax"
    assert np.isfinite(out["loss"]).all() and out["loss"][-1] < out["loss"][0], out["loss"]
    assert out["synchronised"]  # 24 steps, a multiple of the sync period: the fast weights are the slow ones


def test_rectification_is_the_share_of_adams_step_that_radam_takes():
    # The values the module docstring quotes.
    np.testing.assert_allclose(rectification([60, 300, 1000]), [0.16, 0.37, 0.65], atol=0.01)
    np.testing.assert_allclose(rectification([60, 300], beta_2=0.99), [0.5, 0.92], atol=0.01)
    assert np.all(rectification([1, 2, 3, 4, 5]) == 0)  # plain momentum steps first
    # With one constant gradient Adam's normalised step is 1, so RAdam moves by lr * r_t.
    variable = keras.Variable(np.zeros(1, np.float32))
    optimizer, before = RAdam(learning_rate=1.0, beta_2=0.99), []
    for _ in range(40):
        before.append(float(variable.numpy()[0]))
        optimizer.apply([np.ones(1, np.float32)], [variable])
    steps = -np.diff([*before, float(variable.numpy()[0])])
    rectified = rectification(np.arange(1, 41), beta_2=0.99) > 0
    np.testing.assert_allclose(steps[rectified], rectification(np.arange(1, 41), beta_2=0.99)[rectified], rtol=1e-4)
