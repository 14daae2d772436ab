"""What the filters of ``pcfilter filter`` do, pixel by pixel, on the two real organised development
scans: the figure chapter 5c draws where the scans are, recorded here for readers without them.

Reads ``NAME.ptx[.gz]`` + ``NAME.outliers[.gz]`` of ``--data`` as ``pcfilter filter`` reads them and
runs the U-Net (the default for organised input), the neighbour filter, SOR and the morphological
opening with the command line's settings (``FILTERS``); draws ``viz.real_scans.show_real_outcomes``
to ``realscan_outcomes.png``. Nothing is tuned on the real scans.

    python benchmarks/realscan_outcomes.py [--data DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import matplotlib

matplotlib.use("Agg")

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

from pcfilter_lib import filters  # noqa: E402 (after runtime.setup)
from pcfilter_lib.cli.inputs import read_filter_input  # noqa: E402
from pcfilter_lib.io.ptx import read_ptx_labels  # noqa: E402
from pcfilter_lib.viz import real_scans  # noqa: E402

SCANS = ("gpu_006", "apple_03")


def filters_shown() -> dict:
    """The filters of the figure, by the names the chapter gives them, as the command line makes them."""
    return {"U-Net": filters.unet_filter(), "neighbour filter": filters.neighbour_filter(),
            "SOR": filters.baseline_filter("sor"), "opening": filters.baseline_filter("morph")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the organised scans (default <data folder>/realscans/organised)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for the figure")
    args = parser.parse_args(argv)
    folder = args.data or config.data_dir() / "realscans" / "organised"
    paths = {name: folder / f"{name}.ptx.gz" for name in SCANS}
    if missing := [str(p) for p in paths.values() if not p.is_file()]:
        parser.error(f"no real scan {', '.join(missing)}; data_scripts/download_realscans.py puts them there")
    real = {}
    for name, path in paths.items():
        scan = read_filter_input(path)
        real[name] = {**scan, "artefact": read_ptx_labels(path, scan["valid"])}
    chosen = filters_shown()
    keeps = {name: {f: c.keep_mask(scan) for f, c in chosen.items()} for name, scan in real.items()}
    fig = real_scans.show_real_outcomes(real, keeps, columns=3)
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "realscan_outcomes.png", dpi=72)
    print(f"wrote {args.out / 'realscan_outcomes.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
