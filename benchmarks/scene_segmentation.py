"""3D semantic segmentation of scanned bins: the sliding-window column network against the fully
convolutional 3D U-Net, the U-Net at three resolutions, and the eigenbasis of a partial scan.

Makes (or resumes) the scene set of ``recipes.scene_segmentation`` (``FULL``, or ``FAST`` with
PCFILTER_FAST=1) in the data folder, trains both networks briefly and scores them on the test scenes
(IoU per class, mean IoU over the surface classes, IoU of all parts together, seconds per scene); then
trains the U-Net again on the same scenes coarsened to each resolution of ``--resolutions`` and scores
it at the finest grid (``experiments.scene_structure.resolution_study``); then compares the
Laplace-Beltrami eigenbasis of three procedural parts with that of their partial scan. JSON and
markdown go to ``--out``.

    python benchmarks/scene_segmentation.py [--resolutions 16 32 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

import numpy as np

from pcfilter_lib.data import scene_voxels
from pcfilter_lib.experiments import scene_comparisons, scene_structure
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.labels import SEMANTIC_NAMES
from pcfilter_lib.recipes import scene_segmentation as seg
from pcfilter_lib.timing import clock

PARTS = {"blob": None, "torus": {"radius": 0.03, "tube": 0.01}, "sphere": {"radius": 0.03}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=None,
                        help="grid sides of the resolution study (default 16 32 64; 8 16 32 with PCFILTER_FAST=1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    recipe = config.choose(full=seg.FULL, fast=seg.FAST)
    resolutions = args.resolutions or config.choose(full=[16, 32, 64], fast=[8, 16, 32])
    start = time.perf_counter()

    report = scene_comparisons.run_scene_segmentation(recipe, config.data_dir(), progress=True)
    folder = config.data_dir() / recipe.folder
    rows = scene_structure.resolution_study(scene_voxels.load_scene_grids(folder, "train"),
                                            scene_voxels.load_scene_grids(folder, "test"), recipe, resolutions)
    spectra = {kind: scene_structure.eigenbasis_under_partial_scan(kind, params) for kind, params in PARTS.items()}

    present = [c for c in SEMANTIC_NAMES if c in report["column"]["iou"] or c in report["unet"]["iou"]]
    lines = [f"Semantic segmentation of {report['scenes']['test']} test bins after training on "
             f"{report['scenes']['train']} ({recipe.name} recipe: {recipe.resolution}^3 voxels, {recipe.n_views} views "
             f"of {recipe.scan_size[0]}x{recipe.scan_size[1]}, {recipe.epochs} epochs). IoU over every voxel.", "",
             "| network | parameters | train s | s per scene | mean IoU | all parts IoU | "
             + " | ".join(present) + " |", "|---" * (6 + len(present)) + "|"]
    for name in ("column", "unet"):
        r = report[name]
        cells = [f"{r['iou'][c]:.3f}" if c in r["iou"] else "" for c in present]
        lines.append(f"| {name} | {r['parameters']} | {r['train_seconds']:.0f} | {r['seconds_per_scene']:.3f} | "
                     f"{r['mean_iou']:.3f} | {r['part_iou']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "The U-Net at several resolutions of the same scenes, scored at the finest grid.", "",
              "| resolution | voxel mm | input bytes | activation bytes | train s | s per scene | mean IoU |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['resolution']}^3 | {r['voxel_mm']:.1f} | {r['input_bytes']} | {r['activation_bytes']} | "
              f"{r['train_seconds']:.0f} | {r['seconds_per_scene']:.3f} | {r['mean_iou']:.3f} |" for r in rows]
    lines += ["", "Laplace-Beltrami eigenbasis (8 lowest) of a part against its partial scan.", "",
              "| part | vertices | seen | mean principal angle (deg) | median eigenvalue shift |",
              "|---|---|---|---|---|"]
    lines += [f"| {kind} | {s['vertices']} | {s['seen_vertices']} | {s['mean_angle_deg']:.1f} | "
              f"{np.nanmedian(s['eigenvalue_shift']):+.2f} |" for kind, s in spectra.items()]
    lines += ["", f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "scene_segmentation.md", text + "\n")
    for name in ("column", "unet"):
        report[name].pop("confusion")
    atomic_write_text(args.out / "scene_segmentation.json", json.dumps(
        {"date": str(datetime.date.today()), "device": clock.device_report(), "fast_mode": config.fast_mode(),
         "segmentation": report, "resolutions": rows,
         "spectra": {k: {key: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v for key, v in s.items()}
                     for k, s in spectra.items()}}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
