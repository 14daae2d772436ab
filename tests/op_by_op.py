"""Keras' training, test and prediction steps run op by op instead of as traced graphs, for a block.

Tracing a step into a graph takes seconds on a CPU, more than the few steps of a small network that some
tests train; those tests check what an experiment reports (sizes, rows, names, files), which does not
depend on it, and every network is also trained in graph mode by another test. ``conftest.eager_steps``
gives it to a test; module fixtures use ``op_by_op()`` directly.
"""

import contextlib
import warnings


@contextlib.contextmanager
def op_by_op():
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.data still builds its pipeline's functions as graphs, and says so
        warnings.filterwarnings("ignore", "Even though the `tf.config.experimental_run_functions_eagerly`")
        tf.config.run_functions_eagerly(True)
        try:
            yield
        finally:
            tf.config.run_functions_eagerly(False)
