"""Gradient descent and its descendants, each a few lines of NumPy, and a small loss surface to
watch them on.

Every rule here updates weights ``w`` from a gradient ``g`` of the loss, one step at a time:

* **Gradient descent**: ``w <- w - lr g``. Whether it is *batch*, *stochastic* or *mini-batch*
  gradient descent depends only on how many examples ``g`` is averaged over (all, one or a few),
  which is the caller's choice (``LineFit.gradient`` takes the examples).
* **Momentum**, in the form of the YOVO thesis: an exponentially weighted mean of the gradients,
  ``d <- beta d + (1 - beta) g``, and ``w <- w - lr d``. Keras' ``SGD(momentum=beta)`` keeps the
  sum ``v <- beta v - lr' g`` instead; the two take the same steps when ``lr' = lr (1 - beta)``.
* **RMSProp**: a running mean of squared gradients, ``s <- rho s + (1 - rho) g^2``, divides each
  weight's step, ``w <- w - lr g / sqrt(s + eps)``, so that every weight moves at about the same
  pace whatever the scale of its gradient (Keras puts ``eps`` inside the root, as here).
* **Adam**: momentum and RMSProp together, ``m <- beta_1 m + (1 - beta_1) g``,
  ``s <- beta_2 s + (1 - beta_2) g^2``. Both means start at zero, so early on they are too small;
  dividing by ``1 - beta^t`` at step t corrects that bias exactly for a constant gradient:
  ``w <- w - lr m_hat / (sqrt(s_hat) + eps)``. Keras computes the same step with ``eps`` scaled by
  ``sqrt(1 - beta_2^t)``, a difference of order ``eps``.

``keras_optimizer`` gives the ``keras.optimizers`` object that takes the same steps as a rule, and
``keras_path`` runs it, so that the rules can be checked against Keras step by step. The rules
themselves are NumPy; only those two checks use Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

RULES = ("gradient descent", "momentum", "rmsprop", "adam")


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number above 0, got {value}")
    return value


@dataclass
class GradientDescent:
    """``w <- w - lr g``.

    Args:
        lr: the learning rate (step size), above 0.
    """

    lr: float = 0.1

    def __post_init__(self):
        self.lr = _check_rate("lr", self.lr)

    def reset(self) -> None:
        """Forget the state of earlier steps (this rule keeps none)."""

    def step(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The weights after one step from ``w`` along the gradient ``g``."""
        return w - self.lr * g


@dataclass
class Momentum:
    """Gradient descent on an exponentially weighted mean of the gradients (the thesis' form).

    Args:
        lr: the learning rate, above 0.
        beta: the mean's decay, in [0, 1); 0 is plain gradient descent.
    """

    lr: float = 0.1
    beta: float = 0.9
    d: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.lr = _check_rate("lr", self.lr)
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {self.beta}")

    def reset(self) -> None:
        """Forget the running mean."""
        self.d = None

    def step(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The weights after one step: ``d <- beta d + (1 - beta) g``, ``w - lr d``."""
        self.d = (1 - self.beta) * g if self.d is None else self.beta * self.d + (1 - self.beta) * g
        return w - self.lr * self.d


@dataclass
class RMSProp:
    """Steps divided by the root of a running mean of squared gradients.

    Args:
        lr: the learning rate, above 0.
        rho: the mean's decay, in [0, 1).
        eps: added to the mean inside the root, so that a zero gradient does not divide by zero.
    """

    lr: float = 0.01
    rho: float = 0.9
    eps: float = 1e-7
    s: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        self.lr = _check_rate("lr", self.lr)
        if not 0.0 <= self.rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {self.rho}")

    def reset(self) -> None:
        """Forget the running mean."""
        self.s = None

    def step(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The weights after one step: ``s <- rho s + (1 - rho) g^2``, ``w - lr g / sqrt(s + eps)``."""
        square = g * g
        self.s = (1 - self.rho) * square if self.s is None else self.rho * self.s + (1 - self.rho) * square
        return w - self.lr * g / np.sqrt(self.s + self.eps)


@dataclass
class Adam:
    """Momentum and RMSProp with both running means corrected for their start at zero.

    Args:
        lr: the learning rate, above 0.
        beta_1: decay of the mean of gradients, in [0, 1).
        beta_2: decay of the mean of squared gradients, in (0, 1).
        eps: added to the root of the corrected second moment.
    """

    lr: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    eps: float = 1e-7
    m: np.ndarray | None = field(default=None, repr=False)
    s: np.ndarray | None = field(default=None, repr=False)
    t: int = field(default=0, repr=False)

    def __post_init__(self):
        self.lr = _check_rate("lr", self.lr)
        if not (0.0 <= self.beta_1 < 1.0 and 0.0 < self.beta_2 < 1.0):
            raise ValueError(f"Adam needs 0 <= beta_1 < 1 and 0 < beta_2 < 1, got {self.beta_1} and {self.beta_2}")

    def reset(self) -> None:
        """Forget both running means and the step count."""
        self.m, self.s, self.t = None, None, 0

    def step(self, w: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The weights after one step (see the module docstring)."""
        self.t += 1
        if self.m is None:
            self.m, self.s = np.zeros_like(g), np.zeros_like(g)
        self.m = self.beta_1 * self.m + (1 - self.beta_1) * g
        self.s = self.beta_2 * self.s + (1 - self.beta_2) * g * g
        m_hat = self.m / (1 - self.beta_1 ** self.t)
        s_hat = self.s / (1 - self.beta_2 ** self.t)
        return w - self.lr * m_hat / (np.sqrt(s_hat) + self.eps)


Rule = GradientDescent | Momentum | RMSProp | Adam
Gradient = Callable[[np.ndarray, int], np.ndarray]


def path(rule: Rule, gradient: Gradient, w0, steps: int) -> np.ndarray:
    """Run a rule from ``w0``: ``steps`` steps, the rule's state reset first.

    Args:
        rule: a ``GradientDescent``, ``Momentum``, ``RMSProp`` or ``Adam``.
        gradient: ``gradient(w, step)`` -> the gradient at ``w`` for step 0, 1, ... (a stochastic
            gradient may use the step to pick its examples).
        w0: the starting weights, a 1D array.
        steps: how many steps, at least 1.

    Returns:
        A ``(steps + 1, len(w0))`` float64 array: ``w0`` and the weights after every step.
    """
    w = _start(w0, steps)
    rule.reset()
    out = [w]
    for k in range(steps):
        w = rule.step(w, np.asarray(gradient(w, k), np.float64))
        out.append(w)
    return np.stack(out)


def _start(w0, steps: int) -> np.ndarray:
    w = np.asarray(w0, np.float64)
    if w.ndim != 1 or not np.all(np.isfinite(w)):
        raise ValueError(f"w0 must be a 1D array of finite numbers, got shape {w.shape}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive whole number, got {steps}")
    return w


def keras_optimizer(rule: Rule):
    """The ``keras.optimizers`` object that takes the same steps as ``rule`` (a fresh one).

    Gradient descent is ``SGD``; momentum is ``SGD(learning_rate=lr (1 - beta), momentum=beta)``,
    because Keras sums the gradients where the thesis averages them; RMSProp and Adam map
    parameter for parameter.
    """
    if isinstance(rule, GradientDescent):
        return keras.optimizers.SGD(learning_rate=rule.lr)
    if isinstance(rule, Momentum):
        return keras.optimizers.SGD(learning_rate=rule.lr * (1 - rule.beta), momentum=rule.beta)
    if isinstance(rule, RMSProp):
        return keras.optimizers.RMSprop(learning_rate=rule.lr, rho=rule.rho, epsilon=rule.eps)
    if isinstance(rule, Adam):
        return keras.optimizers.Adam(learning_rate=rule.lr, beta_1=rule.beta_1, beta_2=rule.beta_2,
                                     epsilon=rule.eps)
    raise ValueError(f"rule must be one of GradientDescent, Momentum, RMSProp, Adam, got {type(rule).__name__}")


def keras_path(optimizer, gradient: Gradient, w0, steps: int) -> np.ndarray:
    """``path`` with a Keras optimizer: the same gradients applied to a float64 ``keras.Variable``.

    Returns:
        A ``(steps + 1, len(w0))`` float64 array, as ``path``.
    """
    w = _start(w0, steps)
    variable = keras.Variable(w, dtype="float64")
    out = [w]
    for k in range(steps):
        g = np.asarray(gradient(keras.ops.convert_to_numpy(variable), k), np.float64)
        optimizer.apply([keras.ops.convert_to_tensor(g, dtype="float64")], [variable])
        out.append(keras.ops.convert_to_numpy(variable).astype(np.float64))
    return np.stack(out)


@dataclass(frozen=True)
class LineFit:
    """Fitting a line ``y = a x + b`` by least squares: a loss surface over two weights ``(a, b)``.

    The loss is the mean of ``(a x_i + b - y_i)^2 / 2`` over the examples. When the ``x`` are far
    from zero, ``a`` and ``b`` trade off against each other and the surface is a long, narrow
    valley: the classic case where plain gradient descent zigzags and momentum or per-weight step
    sizes help.

    Args:
        x, y: the examples, 1D arrays of the same length.
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self):
        x, y = np.asarray(self.x, np.float64), np.asarray(self.y, np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError(f"x and y must be 1D arrays of finite numbers of one length, got {x.shape} and {y.shape}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def loss(self, a, b) -> np.ndarray:
        """The mean loss at slope ``a`` and intercept ``b`` (arrays broadcast, e.g. a grid)."""
        a, b = np.asarray(a, np.float64)[..., None], np.asarray(b, np.float64)[..., None]
        return 0.5 * np.mean((a * self.x + b - self.y) ** 2, axis=-1)

    def gradient(self, w, examples=None) -> np.ndarray:
        """The gradient ``(dL/da, dL/db)`` at ``w = (a, b)``, averaged over ``examples`` (indices;
        None: all of them)."""
        x, y = (self.x, self.y) if examples is None else (self.x[examples], self.y[examples])
        residual = w[0] * x + w[1] - y
        return np.array([np.mean(residual * x), np.mean(residual)])

    def hessian(self) -> np.ndarray:
        """The loss's second derivatives, the same everywhere: ``[[mean x^2, mean x], [mean x, 1]]``.
        Gradient descent diverges once its learning rate exceeds 2 / (its largest eigenvalue)."""
        return np.array([[np.mean(self.x ** 2), np.mean(self.x)], [np.mean(self.x), 1.0]])

    def minimum(self) -> np.ndarray:
        """The least-squares ``(a, b)``."""
        return np.polyfit(self.x, self.y, 1)


def make_line_fit(n: int = 64, slope: float = 2.0, intercept: float = -1.0, x_range=(1.0, 3.0),
                  noise: float = 0.3, seed: int = 0) -> LineFit:
    """Examples of a noisy line, ``x`` uniform in ``x_range`` and Gaussian noise on ``y``."""
    if int(n) != n or n < 2:
        raise ValueError(f"n must be a whole number of at least 2, got {n}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(*x_range, size=int(n))
    return LineFit(x, slope * x + intercept + noise * rng.normal(size=int(n)))


def batch_schedule(n: int, batch_size: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """The examples of each step of mini-batch training: the ``n`` examples shuffled every epoch
    and cut into batches of ``batch_size`` (a last, smaller batch is dropped). ``batch_size`` 1 is
    stochastic gradient descent, ``n`` is batch gradient descent."""
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be between 1 and the {n} examples, got {batch_size}")
    rng = np.random.default_rng(seed)
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(n)
        batches += [order[i:i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return batches[:steps]
