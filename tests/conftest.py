"""Fixtures shared by the unit tests."""

import pytest
from op_by_op import op_by_op


@pytest.fixture
def eager_steps():
    """Keras runs the training, test and prediction steps op by op while a test that asks for this runs
    (see tests/op_by_op.py for when that is right)."""
    with op_by_op():
        yield
