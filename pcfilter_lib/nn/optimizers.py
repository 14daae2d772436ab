"""Rectified Adam, Lookahead, and Ranger (Lookahead around Rectified Adam) as Keras 3 optimizers.

Keras 3 ships neither RAdam nor Lookahead. TensorFlow Addons had both but ended development in 2024
and works with ``tf.keras`` (Keras 2) only; the small packages ``keras-rectified-adam`` and
``keras-lookahead`` were last released in 2022 and 2019 for Keras 2 as well. So they are written
here with ``keras.ops`` (every backend) and registered for ``keras.models.load_model``.

* **RAdam** (Liu et al. 2020). Adam's adaptive step divides by a running mean of squared
  gradients; in the first steps that mean rests on few gradients and its variance is large, which
  is why Adam often needs a warm-up. RAdam measures how many gradients the mean effectively holds,

      rho_inf = 2 / (1 - beta_2) - 1,   rho_t = rho_inf - 2 t beta_2^t / (1 - beta_2^t),

  and while ``rho_t`` is at most ``rectify_threshold`` it takes plain momentum steps
  ``lr * m_hat``. Afterwards it takes Adam's step scaled by the rectification term

      r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),

  which grows from 0 towards 1 as the estimate settles: a warm-up derived from the statistics.
  The paper's algorithm switches at rho_t > 4; the authors' code and PyTorch's RAdam use 5, the
  default here (r_t is close to 0 just above 4 either way). The warm-up is long: with
  beta_2 = 0.999, r_t is 0.16 after 60 steps, 0.37 after 300 and 0.65 after 1000, so for the
  first thousand or so steps RAdam moves much less than Adam at the same learning rate; with
  beta_2 = 0.99 it is 0.5 after 60 steps and 0.92 after 300, which suits short runs on a CPU.
* **Lookahead** (Zhang, Lucas, Hinton and Ba 2019) keeps a second, *slow* copy of the weights.
  The inner optimizer takes ``sync_period`` (k) steps with the *fast* weights; then the slow
  weights move a fraction ``slow_step_size`` (alpha) of the way towards the fast ones,
  ``slow <- slow + alpha (fast - slow)``, and the fast weights restart from there. The k fast steps
  explore; the slow step averages out their noise.
* **Ranger** (Wright 2019) is Lookahead with RAdam inside; the YOVO thesis trained with it
  (k = 6, alpha = 0.5). ``LookaheadAdam`` is the same around Adam, for comparisons.

Lookahead is a mixin of the inner optimizer's class rather than a wrapper object, so its slow
weights are ordinary optimizer variables: they are saved with the model, and the JAX backend's
stateless training step sees them like Adam's moments.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def rectification(steps, beta_2: float = 0.999, rectify_threshold: float = 5.0) -> np.ndarray:
    """RAdam's rectification term r_t at each step t = 1, 2, ... (see the module docstring): the
    share of Adam's adaptive step that RAdam takes. 0 while rho_t <= ``rectify_threshold`` (RAdam
    then takes plain momentum steps), rising towards 1."""
    t = np.asarray(steps, np.float64)
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    power = beta_2 ** t
    rho = rho_inf - 2.0 * t * power / (1.0 - power)
    safe = np.maximum(rho, 4.0 + 1e-3)
    r = np.sqrt((safe - 4.0) * (safe - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe))
    return np.where(rho > rectify_threshold, r, 0.0)


@keras.saving.register_keras_serializable(package="pcfilter")
class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam.

    Args:
        learning_rate: step size (a float or a Keras schedule).
        beta_1: decay of the running mean of gradients (Adam's beta_1).
        beta_2: decay of the running mean of squared gradients (Adam's beta_2).
        epsilon: added to the root of the second moment before dividing.
        rectify_threshold: the adaptive step is used once rho_t exceeds it (must be above 4,
            where the rectification term is defined).
        **kwargs: the arguments every Keras optimizer takes (``weight_decay``, ``clipnorm``...).
    """

    def __init__(self, learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 rectify_threshold: float = 5.0, name: str = "radam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not (0.0 <= beta_1 < 1.0 and 0.0 < beta_2 < 1.0):
            raise ValueError(f"RAdam needs 0 <= beta_1 < 1 and 0 < beta_2 < 1, got {beta_1} and {beta_2}")
        if rectify_threshold <= 4.0:
            raise ValueError(f"rectify_threshold must exceed 4 (the rectification term needs rho_t > 4), "
                             f"got {rectify_threshold}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.rectify_threshold = float(rectify_threshold)
        self._step_scales = None  # set while a step updates the variables

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The step's scalars are the same for every variable: computed once per step, not once per
        # variable, they keep the traced training step of a network with many variables small.
        self._step_scales = self._scales(learning_rate)
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._step_scales = None

    def _scales(self, learning_rate) -> tuple:
        """This step's factors of the momentum ``m``, of Adam's normalised step ``m / (sqrt(v c) + eps)``
        and the bias correction ``c`` of ``v``: (lr / (1 - beta_1^t), 0, c) while rho_t is at most the
        threshold, (0, lr r_t / (1 - beta_1^t), c) afterwards."""
        t = ops.cast(self.iterations + 1, "float32")
        beta_2_power = ops.power(self.beta_2, t)
        rho_inf = 2.0 / (1.0 - self.beta_2) - 1.0
        rho_t = rho_inf - 2.0 * t * beta_2_power / (1.0 - beta_2_power)
        # Clamped so that r_t stays finite in the steps that do not use it.
        safe_rho = ops.maximum(rho_t, 4.0 + 1e-3)
        r_t = ops.sqrt((safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * safe_rho))
        rectified = ops.cast(rho_t > self.rectify_threshold, "float32")
        step = ops.cast(learning_rate, "float32") / (1.0 - ops.power(self.beta_1, t))
        return (1.0 - rectified) * step, rectified * r_t * step, 1.0 / (1.0 - beta_2_power)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        scales = self._step_scales if self._step_scales is not None else self._scales(learning_rate)
        momentum_scale, adaptive_scale, v_correction = (ops.cast(s, dtype) for s in scales)
        gradient = ops.cast(gradient, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1.0 - self.beta_2))
        adaptive = m / (ops.sqrt(v * v_correction) + self.epsilon)
        self.assign_sub(variable, momentum_scale * m + adaptive_scale * adaptive)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "rectify_threshold": self.rectify_threshold}


class _Lookahead:
    """Mixin that adds Lookahead to the optimizer class listed after it (see the module docstring).

    Fast weights are the model's variables; the slow weights are optimizer variables. At the first
    step of every cycle (``iterations % k == 0``) the slow copy is set to the current weights, which
    after a synchronisation are equal to it anyway (and at step 0, or after loading weights, start
    the cycle from them); after the k-th step of the cycle both become the interpolation.
    """

    def _set_lookahead(self, sync_period: int, slow_step_size: float) -> None:
        if int(sync_period) != sync_period or sync_period < 1:
            raise ValueError(f"sync_period (Lookahead's k) must be a positive whole number, got {sync_period}")
        if not 0.0 < slow_step_size <= 1.0:
            raise ValueError(f"slow_step_size (Lookahead's alpha) must be in (0, 1], got {slow_step_size}")
        self.sync_period, self.slow_step_size = int(sync_period), float(slow_step_size)
        self._cycle = None  # set while a step updates the variables

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._slow_weights = self.add_optimizer_variables(var_list, "slow")

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Where the step lies in the cycle, computed once per step rather than once per variable.
        self._cycle = self._cycle_flags()
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._cycle = None

    def _cycle_flags(self) -> tuple:
        """(this step starts a cycle, this step ends one)."""
        return (ops.equal(self.iterations % self.sync_period, 0),
                ops.equal((self.iterations + 1) % self.sync_period, 0))

    def update_step(self, gradient, variable, learning_rate):
        start, sync = self._cycle if self._cycle is not None else self._cycle_flags()
        slow = self._slow_weights[self._get_variable_index(variable)]
        self.assign(slow, ops.where(start, ops.convert_to_tensor(variable), ops.convert_to_tensor(slow)))
        super().update_step(gradient, variable, learning_rate)
        fast, slow_value = ops.convert_to_tensor(variable), ops.convert_to_tensor(slow)
        moved = slow_value + self.slow_step_size * (fast - slow_value)
        self.assign(slow, ops.where(sync, moved, slow_value))
        self.assign(variable, ops.where(sync, moved, fast))

    def get_config(self):
        return {**super().get_config(), "sync_period": self.sync_period, "slow_step_size": self.slow_step_size}


@keras.saving.register_keras_serializable(package="pcfilter")
class Ranger(_Lookahead, RAdam):
    """Lookahead around RAdam (Ranger).

    Args:
        learning_rate, beta_1, beta_2, epsilon, rectify_threshold: RAdam's (see ``RAdam``).
        sync_period: Lookahead's k, the fast steps between two slow updates (the YOVO thesis: 6).
        slow_step_size: Lookahead's alpha, the fraction of the way the slow weights move towards
            the fast ones (the thesis: 0.5).
        **kwargs: the arguments every Keras optimizer takes.
    """

    def __init__(self, learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8,
                 rectify_threshold: float = 5.0, sync_period: int = 6, slow_step_size: float = 0.5,
                 name: str = "ranger", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         rectify_threshold=rectify_threshold, name=name, **kwargs)
        self._set_lookahead(sync_period, slow_step_size)


@keras.saving.register_keras_serializable(package="pcfilter")
class LookaheadAdam(_Lookahead, keras.optimizers.Adam):
    """Lookahead around Keras' Adam: separates Lookahead's effect from RAdam's in a comparison.

    Args:
        learning_rate, beta_1, beta_2, epsilon: Adam's.
        sync_period: Lookahead's k.
        slow_step_size: Lookahead's alpha.
        **kwargs: the arguments every Keras optimizer takes.
    """

    def __init__(self, learning_rate=1e-3, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 sync_period: int = 6, slow_step_size: float = 0.5, name: str = "lookahead_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)
        self._set_lookahead(sync_period, slow_step_size)


OPTIMIZERS = ("adam", "radam", "lookahead_adam", "ranger")


def make_optimizer(name: str, learning_rate=1e-3, **kwargs) -> keras.optimizers.Optimizer:
    """A fresh optimizer by name (``OPTIMIZERS``) with the given learning rate; ``kwargs`` (``beta_2``,
    ``sync_period``...) override the defaults above.

    Raises:
        ValueError: for an unknown name.
    """
    makers = {"adam": keras.optimizers.Adam, "radam": RAdam, "lookahead_adam": LookaheadAdam, "ranger": Ranger}
    if name not in makers:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
    return makers[name](learning_rate=learning_rate, **kwargs)
