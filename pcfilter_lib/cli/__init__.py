"""The ``pcfilter`` command line: a package with one module per command.

``app`` parses the command line, turns errors into exit statuses and handles Ctrl-C; it imports the
module of a command (``info``, ``simulate``, ``filter``, ``reconstruct``, ``evaluate``, ``modelnet``,
``bench``) only when that command runs, so ``pcfilter --help`` and a refused option load neither
NumPy nor TensorFlow. ``options`` holds the checks and option helpers several commands share,
``inputs`` the reading of a scan or cloud and the choice of filter, ``folders`` the run of a command
over a folder of inputs in worker processes. ``workload_process`` is the worker process of
``pcfilter bench``.

Before any work, before a folder is created or TensorFlow starts, a command checks everything that
can be checked: option values and ranges, that inputs are regular files, that output folders are
writable (for a folder of inputs as for one file), that no output exists yet (unless
``--overwrite``; the input is never replaced), and a model's kind from its first bytes and its
model card. Bad input ends with one line on stderr naming the
option or file and what to do, and exit status 1 (2 for a command line that cannot be parsed at
all). Ctrl-C ends with one line and status 130, and no output file is left half-written. TensorFlow
and Open3D are imported only after ``runtime.setup`` has muted their start-up logs, so stderr holds
nothing but the tool's own lines.
"""

from pcfilter_lib.cli.app import main

__all__ = ["main"]
