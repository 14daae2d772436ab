"""Fixtures shared by the unit tests."""

import warnings

import pytest


@pytest.fixture
def eager_steps():
    """Keras runs the training, test and prediction steps op by op while a test that asks for this runs.
    Tracing a step into a graph takes seconds on a CPU, more than the few steps of a small network that
    such a test trains; a test that uses it checks what an experiment reports (sizes, rows, names), which
    does not depend on it. Every network is also trained in graph mode by another test."""
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.data still builds its pipeline's functions as graphs, and says so
        warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
        tf.config.run_functions_eagerly(True)
        try:
            yield
        finally:
            tf.config.run_functions_eagerly(False)
