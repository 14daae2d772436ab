"""lessons.descent: the NumPy update rules take the same steps as keras.optimizers, step by step."""

import numpy as np
import pytest

from pcfilter_lib.runtime import setup

setup()

from pcfilter_lib.lessons import descent

FIT = descent.make_line_fit(n=40, seed=3)
START = np.array([-1.0, 3.0])


def full_batch(w, step):
    return FIT.gradient(w)


BATCHES = descent.batch_schedule(len(FIT.x), 8, 60, seed=1)


def mini_batch(w, step):
    return FIT.gradient(w, BATCHES[step])


RULES = [descent.GradientDescent(lr=0.05), descent.Momentum(lr=0.05, beta=0.9),
         descent.RMSProp(lr=0.02, rho=0.9), descent.Adam(lr=0.05, beta_1=0.9, beta_2=0.99)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("gradient", [full_batch, mini_batch], ids=["full batch", "mini-batch"])
def test_each_rule_takes_the_steps_of_its_keras_optimizer(rule, gradient):
    ours = descent.path(rule, gradient, START, 60)
    theirs = descent.keras_path(descent.keras_optimizer(rule), gradient, START, 60)
    assert ours.shape == theirs.shape == (61, 2)
    assert np.abs(ours - START).max() > 0.1  # the weights did move
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_a_rule_restarts_from_scratch_on_every_path():
    rule = descent.Adam(lr=0.05)
    first = descent.path(rule, full_batch, START, 10)
    np.testing.assert_array_equal(first, descent.path(rule, full_batch, START, 10))


def test_gradient_descent_reaches_the_least_squares_line():
    w = descent.path(descent.GradientDescent(lr=0.1), full_batch, START, 4000)[-1]
    np.testing.assert_allclose(w, np.polyfit(FIT.x, FIT.y, 1), atol=1e-6)
    np.testing.assert_allclose(FIT.minimum(), np.polyfit(FIT.x, FIT.y, 1))


def test_the_gradient_is_the_slope_of_the_loss():
    w, h = np.array([0.7, -0.2]), 1e-6
    numeric = [(FIT.loss(*(w + h * e)) - FIT.loss(*(w - h * e))) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(FIT.gradient(w), numeric, rtol=1e-6)
    numeric_hessian = [(FIT.gradient(w + h * e) - FIT.gradient(w - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(FIT.hessian(), numeric_hessian, rtol=1e-6)
    grid = FIT.loss(np.zeros((3, 4)), np.ones((3, 4)))
    assert grid.shape == (3, 4)


def test_adams_bias_correction_makes_its_first_step_lr_long_per_weight():
    rule = descent.Adam(lr=0.01, eps=1e-12)
    step = descent.path(rule, full_batch, START, 1)[1] - START
    np.testing.assert_allclose(np.abs(step), 0.01, rtol=1e-9)
    np.testing.assert_allclose(np.sign(step), -np.sign(FIT.gradient(START)))


def test_momentum_with_beta_0_is_gradient_descent():
    plain = descent.path(descent.GradientDescent(lr=0.05), full_batch, START, 20)
    np.testing.assert_allclose(descent.path(descent.Momentum(lr=0.05, beta=0.0), full_batch, START, 20), plain)


def test_every_epoch_of_the_batch_schedule_uses_each_example_once():
    batches = descent.batch_schedule(10, 3, 9, seed=0)  # three batches of 3 per epoch, 1 example left out
    assert [len(b) for b in batches] == [3] * 9
    for epoch in range(3):
        seen = np.concatenate(batches[3 * epoch:3 * epoch + 3])
        assert len(np.unique(seen)) == 9
    assert [len(b) for b in descent.batch_schedule(10, 10, 2)] == [10, 10]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: descent.GradientDescent(lr=0), "lr must be a finite number above 0"),
    (lambda: descent.Momentum(beta=1.0), "beta must be in"),
    (lambda: descent.RMSProp(rho=-0.1), "rho must be in"),
    (lambda: descent.Adam(beta_2=1.0), "Adam needs"),
    (lambda: descent.path(descent.GradientDescent(), full_batch, [[1.0, 2.0]], 3), "w0 must be a 1D array"),
    (lambda: descent.path(descent.GradientDescent(), full_batch, START, 0), "steps must be"),
    (lambda: descent.batch_schedule(5, 6, 3), "batch_size must be between 1 and the 5"),
    (lambda: descent.LineFit(np.ones(3), np.ones(4)), "one length"),
    (lambda: descent.keras_optimizer("adam"), "rule must be one of"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_gradient_descent_diverges_just_above_two_over_the_largest_curvature():
    limit = 2 / np.linalg.eigvalsh(FIT.hessian()).max()
    for factor, settles in ((0.95, True), (1.05, False)):
        end = descent.path(descent.GradientDescent(lr=factor * limit), full_batch, START, 400)[-1]
        assert (np.abs(end - FIT.minimum()).max() < 1e-2) == settles
