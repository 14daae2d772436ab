"""Fixtures shared by the unit tests."""

import subprocess

import pytest
from IPython.core.interactiveshell import InteractiveShell
from op_by_op import op_by_op
from traitlets.config import Config

from pcfilter_lib.cli import main


@pytest.fixture
def eager_steps():
    """Keras runs the training, test and prediction steps op by op while a test that asks for this runs
    (see tests/op_by_op.py for when that is right)."""
    with op_by_op():
        yield


@pytest.fixture
def pcfilter(capsys):
    """The command line in this process: call it with the command's words, get back the exit status
    and what it printed, as ``subprocess.run`` would."""
    def call(*args):
        capsys.readouterr()
        status = main(list(map(str, args)))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, status, out, err)
    return call


@pytest.fixture
def shell():
    """An IPython shell with its history in memory, so that display() and fig.show() publish display
    bundles (outside one they only print)."""
    settings = Config()
    settings.HistoryManager.hist_file = ":memory:"
    yield InteractiveShell.instance(config=settings)
    InteractiveShell.clear_instance()
