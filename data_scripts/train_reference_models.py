"""Train the reference models shipped in pcfilter_lib/weights/, reproducibly, and record how.

    python data_scripts/train_reference_models.py --target pointnet
    python data_scripts/train_reference_models.py --target unet
    python data_scripts/train_reference_models.py --target pointfilter
    PCFILTER_FAST=1 python data_scripts/train_reference_models.py --target pointnet --out /tmp/w

Each target writes `<name>.keras` and `<name>.json` beside it: the data it was trained on (generator,
version, seed and the sha256 of the data set's manifest), the exact command, the settings and the
test metrics as measured at the end of the run. PointNet learns ModelNet10 from the data folder: the
real data set if `<data folder>/ModelNet10` exists, otherwise the procedural stand-in (generated if
missing). The U-Net and the point filter learn from the default simulated scans (made if missing).
In fast mode the default output is `<data folder>/weights_fast`, so a quick trial never replaces the
shipped weights. Each target registers in TARGETS.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from pcfilter_lib import config, runtime

WEIGHTS = Path(__file__).resolve().parent.parent / "pcfilter_lib" / "weights"

# Settings of the shipped PointNet: a quarter-width network on 512 points trains on two CPU cores in
# about ten minutes.
POINTNET = {"num_points": 512, "width": 0.25, "momentum": 0.9, "dropout": 0.3, "batch_size": 32,
            "learning_rate": 1e-3, "validation_fraction": 0.1}


def _environment() -> dict:
    versions = {p: metadata.version(p) for p in ("tensorflow", "keras", "numpy")}
    return {"python": platform.python_version(), "machine": platform.machine(), **versions}


def train_pointnet(out: Path, seed: int, epochs: int) -> dict:
    """Train PointNet on all ten classes; save ``pointnet_modelnet10.keras``; return the manifest."""
    import keras
    import numpy as np

    from pcfilter_lib.data import modelnet
    from pcfilter_lib.io.files import read_manifest, sha256
    from pcfilter_lib.models import pointnet
    from pcfilter_lib.recipes import transfer

    root, kind = modelnet.ensure_dataset(seed=0, progress=True)
    s = POINTNET
    train_all = modelnet.load_split(root, "train", s["num_points"], seed=0, progress=True)
    test = modelnet.load_split(root, "test", s["num_points"], seed=0, progress=True)
    train_set, val_set = modelnet.split_validation(train_all, s["validation_fraction"], seed=seed)
    keras.utils.set_random_seed(seed)
    model = pointnet.build_pointnet(len(train_all.classes), s["num_points"], width=s["width"],
                                    momentum=s["momentum"], dropout=s["dropout"], name="pointnet_modelnet10")
    print(f"training PointNet ({model.count_params()} parameters) on {len(train_set)} clouds, "
          f"validating on {len(val_set)}, {epochs} epochs", flush=True)
    run = transfer.train(model, train_set, val_set, epochs, s["batch_size"], s["learning_rate"], seed=seed,
                         progress=True)
    predicted = transfer.predict(model, test)
    confusion = np.zeros((len(test.classes),) * 2, dtype=int)
    np.add.at(confusion, (test.labels, predicted), 1)
    path = transfer.save_model(model, out / "pointnet_modelnet10.keras")
    data_manifest = read_manifest(root) or {}
    return {
        "model": path.name,
        "load_with": "import pcfilter_lib.models.pointnet; keras.models.load_model(path)",
        "data": {"kind": kind, "root_name": root.name, "generator": data_manifest.get("generator", "ModelNet10"),
                 "version": data_manifest.get("version"), "seed": data_manifest.get("seed"),
                 "manifest_sha256": sha256(root / "manifest.json") if (root / "manifest.json").exists() else None,
                 "classes": list(test.classes), "train": len(train_set), "validation": len(val_set),
                 "test": len(test)},
        "settings": {**s, "epochs": epochs, "seed": seed, "fast_mode": config.fast_mode()},
        "parameters": int(model.count_params()),
        "file_bytes": path.stat().st_size,
        "training_seconds": round(run.seconds, 1),
        "history": {k: [round(v, 4) for v in vs] for k, vs in run.history.items()},
        "test": {"accuracy": round(float(np.mean(predicted == test.labels)), 4),
                 "per_class_accuracy": {c: round(float(confusion[k, k] / max(1, confusion[k].sum())), 4)
                                        for k, c in enumerate(test.classes)},
                 "confusion": confusion.tolist()},
    }


def train_unet(out: Path, seed: int, epochs: int) -> dict:
    """Train the U-Net artefact filter on the default simulated scans (made if missing); save
    ``unet_filter.keras``; return the manifest (see ``pcfilter_lib.recipes.unet_filter``)."""
    from pcfilter_lib.recipes import unet_filter as unet_recipe

    return unet_recipe.train_reference_filter(out, seed=seed, epochs=epochs)


def train_point_filter(out: Path, seed: int, epochs: int) -> dict:
    """Train the point-based artefact filter on the points of the default simulated scans (made if
    missing); save ``pointnet_filter.keras``; return the manifest (see ``pcfilter_lib.recipes.point_filter``)."""
    from pcfilter_lib.recipes import point_filter as point_recipe

    return point_recipe.train_reference_point_filter(out, seed=seed, epochs=epochs)


TARGETS = {"pointnet": (train_pointnet, "pointnet_modelnet10.json", lambda: config.choose(full=25, fast=2)),
           "unet": (train_unet, "unet_filter.json", lambda: None),
           "pointfilter": (train_point_filter, "pointnet_filter.json", lambda: None)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(TARGETS), required=True, help="which reference model to train")
    default = config.choose(full=WEIGHTS, fast=config.data_dir() / "weights_fast")
    parser.add_argument("--out", type=Path, default=default, help=f"output folder (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: by mode)")
    args = parser.parse_args(argv)
    runtime.setup(seed=args.seed)
    from pcfilter_lib.io.files import atomic_write_text

    train, manifest_name, default_epochs = TARGETS[args.target]
    epochs = args.epochs or default_epochs()
    command = "python data_scripts/train_reference_models.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        manifest = train(args.out, args.seed, epochs)
    except (ValueError, OSError) as error:
        print(f"train_reference_models: {error}", file=sys.stderr)
        return 1
    manifest.update({"target": args.target, "command": command, "environment": _environment(),
                     "wall_seconds": round(time.perf_counter() - start, 1)})
    atomic_write_text(args.out / manifest_name, json.dumps(manifest, indent=2) + "\n")
    print(f"{args.target}: test accuracy {manifest['test']['accuracy']:.4f}, "
          f"{manifest['training_seconds']:.0f} s training; wrote {args.out / manifest['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
