"""Simulate a scan dataset: the same options as ``pcfilter simulate``.

    python data_scripts/make_scans.py --out data/scans --n 1000 --seed 0
    PCFILTER_FAST=1 python data_scripts/make_scans.py --out /tmp/scans --n 20

Writes OUT/{train,val,test}/scan_NNNNN.npz and OUT/manifest.json (generator, version, seed,
parameters, sha256 per file), resumes a stopped run, and ends with the distribution of the artefact
fraction per scan and per kind. ``--out`` defaults to ``scans`` in the data folder.
"""

from __future__ import annotations

import sys

from pcfilter_lib import cli, config


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--out" or a.startswith("--out=") for a in argv) and not {"-h", "--help"} & set(argv):
        argv += ["--out", str(config.data_dir() / "scans")]
    return cli.main(["simulate", *argv])


if __name__ == "__main__":
    sys.exit(main())
