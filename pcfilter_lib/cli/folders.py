"""A command over a folder of scans and clouds: the inputs, and their run in worker processes, each a
``python -m pcfilter_lib.cli`` of the same command on one file with the same options."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pcfilter_lib.cli.app import build_parser
from pcfilter_lib.cli.options import option_line
from pcfilter_lib.io.organised import CLOUD_SUFFIXES
from pcfilter_lib.io.ptx import suffix_of

INPUT_SUFFIXES = (*CLOUD_SUFFIXES, ".npz")
# What a worker is given afresh rather than forwarded: its input and output, and no progress.
PER_FILE = ("input", "output", "jobs", "quiet")


def folder_inputs(folder: Path, out: Path, suffixes: tuple[str, ...] = INPUT_SUFFIXES) -> list[Path]:
    """The scans and clouds of the input folder (files ending in one of ``suffixes``), in name order,
    once the output folder ``out`` is known to be a folder (or new) and not the input folder."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o {out} is a file; with a folder of inputs name an output folder")
    if out.resolve() == folder.resolve():
        raise ValueError("-o must be another folder than the input folder (inputs are never overwritten)")
    inputs = sorted(p for p in folder.iterdir() if p.is_file() and suffix_of(p) in suffixes)
    if not inputs:
        clouds = ", ".join(dict.fromkeys(s for s in suffixes if s != ".npz"))  # each once
        raise ValueError(f"{folder} holds no scan (.npz) or cloud ({clouds}) files")
    return inputs


def run_in_workers(args: argparse.Namespace, files: list[tuple[Path, Path]]) -> Iterator[tuple[Path, str, str | None]]:
    """Run ``args.command`` on each (input, output) of ``files``, ``args.jobs`` worker processes at a
    time (one thread each for NumPy's and TensorFlow's pools when several run at once), with every
    option of ``args`` but those of ``PER_FILE``, and ``--quiet``.

    Yields:
        (input, the worker's first line on stdout, None) for a file done, or (input, None, the last
        line of its stderr without the 'pcfilter COMMAND: ' prefix) for one that failed, in the
        order of ``files``.

    Raises:
        KeyboardInterrupt: a worker was interrupted (exit status 130).
    """
    options = option_line(args, build_parser().commands[args.command], leave_out=PER_FILE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.jobs > 1 else None

    def one(file: tuple[Path, Path]) -> tuple[Path, subprocess.CompletedProcess]:
        source, target = file
        command = [sys.executable, "-m", "pcfilter_lib.cli", args.command, str(source), "-o", str(target), *options,
                   "--quiet"]
        return source, subprocess.run(command, capture_output=True, text=True, env=env)

    with ThreadPoolExecutor(args.jobs) as pool:
        for source, done in pool.map(one, files):
            if done.returncode == 130:
                raise KeyboardInterrupt
            if done.returncode == 0:
                yield source, (done.stdout.strip().splitlines() or [""])[0], None
            else:
                stderr = done.stderr.strip()
                reason = stderr.splitlines()[-1] if stderr else f"status {done.returncode}"
                yield source, None, reason.removeprefix(f"pcfilter {args.command}: ")
