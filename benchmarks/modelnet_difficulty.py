"""How hard is the ModelNet10 stand-in? PointNet trained as the shipped model is, scored class by class.

    python benchmarks/modelnet_difficulty.py                               # full size (about 15-30 min)
    python benchmarks/modelnet_difficulty.py --fraction 0.3 --epochs 10    # a quicker look
    python benchmarks/modelnet_difficulty.py --data /path/to/ModelNet10   # any folder in the ModelNet layout
    PCFILTER_FAST=1 python benchmarks/modelnet_difficulty.py

By default the procedural set is generated (or resumed) in the data folder, in full or, in fast mode,
small size; ``--fraction`` generates that share of every class's meshes into a folder of its own.
PointNet is trained with the settings of the shipped model (``data_scripts/train_reference_models.py``,
target ``pointnet``: 512 points, width 0.25, 25 epochs, 10% of the training meshes held out for
validation) and scored on the test split. Prints the test accuracy, the accuracy of every class and the
confusion matrix, and saves them with the settings as JSON and markdown in benchmarks/results/
(``modelnet_difficulty.{json,md}``; ``_fast`` in fast mode, ``_trial`` for a shortened run). Real
ModelNet10 gives PointNet-class models about 0.90, its errors mostly desk / table and night stand /
dresser.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pcfilter_lib import config, runtime

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def shipped_recipe() -> tuple[dict, int]:
    """The shipped PointNet's settings and its epochs at the current size, from its recipe
    (``pcfilter_lib.recipes.classifiers``), so that this benchmark always measures the same recipe."""
    import dataclasses

    from pcfilter_lib.recipes import classifiers

    settings = dataclasses.asdict(config.choose(full=classifiers.FULL, fast=classifiers.FAST)["pointnet"])
    return settings, int(settings["epochs"])


def dataset(data: Path | None, fraction: float, seed: int) -> tuple[Path, str, float]:
    """The folder to measure: ``data`` as given, or the procedural set (all of it, or ``fraction``
    of every class in a folder of its own); returns (folder, kind, generation seconds)."""
    from pcfilter_lib.data import modelnet, procedural_modelnet

    start = time.perf_counter()
    if data is not None:
        return data, "given", 0.0
    if fraction == 1.0:
        root, kind = modelnet.ensure_dataset(config.data_dir(), config.choose(full="full", fast="fast"), seed=seed,
                                             progress=True)
        return root, kind, time.perf_counter() - start
    counts = {name: (max(2, round(train * fraction)), max(1, round(test * fraction)))
              for name, (train, test) in config.choose(full=procedural_modelnet.FULL_COUNTS,
                                                        fast=procedural_modelnet.FAST_COUNTS).items()}
    folder = config.data_dir() / f"{procedural_modelnet.FOLDERS[config.choose(full='full', fast='fast')]}_{fraction:g}"
    root = procedural_modelnet.generate(folder, seed=seed, counts=counts, progress=True)
    return root, "procedural", time.perf_counter() - start


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def markdown(report: dict) -> str:
    """The report as markdown: headline, per-class accuracy and the confusion matrix."""
    classes, matrix = report["classes"], report["confusion"]
    short = [c.replace("night_stand", "n_stand") for c in classes]
    lines = [f"PointNet on {report['data']['root_name']} ({report['data']['kind']}, generator version "
             f"{report['data']['version']}): test accuracy **{report['test_accuracy']:.3f}** "
             f"({report['data']['train']} training, {report['data']['validation']} validation, "
             f"{report['data']['test']} test clouds; {report['settings']['epochs']} epochs, "
             f"{report['training_seconds']:.0f} s training)", "",
             "| true \\ predicted | " + " | ".join(short) + " | accuracy |",
             "|---|" + "---|" * (len(classes) + 1)]
    for k, name in enumerate(classes):
        cells = [f"**{v}**" if j == k else str(v) for j, v in enumerate(matrix[k])]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {report['per_class_accuracy'][name]:.3f} |")
    lines += ["", "Largest confusions: " + ", ".join(f"{a} as {b} {n}" for a, b, n in report["top_confusions"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="a folder in the ModelNet layout (default: the procedural set)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="share of every class's procedural meshes, in (0, 1] (default: 1)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the shipped recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator and the training (default: 0)")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        print(f"modelnet_difficulty: --fraction must lie in (0, 1], got {args.fraction}", file=sys.stderr)
        return 1
    runtime.setup(seed=args.seed)
    import keras

    from pcfilter_lib.data import modelnet
    from pcfilter_lib.io.files import atomic_write_text, read_manifest
    from pcfilter_lib.models import classify, pointnet

    settings, default_epochs = shipped_recipe()
    epochs = args.epochs or default_epochs
    try:
        root, kind, generation_seconds = dataset(args.data, args.fraction, args.seed)
        train_all = modelnet.load_split(root, "train", settings["num_points"], seed=0, progress=True)
        test = modelnet.load_split(root, "test", settings["num_points"], seed=0, progress=True)
    except (ValueError, OSError) as error:
        print(f"modelnet_difficulty: {error}", file=sys.stderr)
        return 1
    train_set, val_set = modelnet.split_validation(train_all, settings["validation_fraction"], seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    model = pointnet.build_pointnet(len(train_all.classes), settings["num_points"], width=settings["width"],
                                    momentum=settings["momentum"], dropout=settings["dropout"])
    print(f"training PointNet ({model.count_params()} parameters) on {len(train_set)} clouds of {root}, "
          f"{epochs} epochs", flush=True)
    run = classify.train(model, train_set, val_set, epochs, settings["batch_size"], settings["learning_rate"],
                         seed=args.seed, progress=True)
    predicted = classify.predict(model, test)
    classes = list(test.classes)
    matrix = confusion_matrix(test.labels, predicted, len(classes))
    off = [(classes[i], classes[j], int(matrix[i, j])) for i in range(len(classes)) for j in range(len(classes))
           if i != j and matrix[i, j] > 0]
    manifest = read_manifest(root) or {}
    report = {
        "data": {"root_name": root.name, "kind": kind, "generator": manifest.get("generator", "ModelNet10"),
                 "version": manifest.get("version"), "seed": manifest.get("seed"),
                 "fraction": args.fraction if args.data is None else None, "train": len(train_set),
                 "validation": len(val_set), "test": len(test), "generation_seconds": round(generation_seconds, 1)},
        "settings": {**settings, "epochs": epochs, "seed": args.seed, "fast_mode": config.fast_mode()},
        "classes": classes,
        "test_accuracy": round(float(np.mean(predicted == test.labels)), 4),
        "per_class_accuracy": {c: round(float(matrix[k, k] / max(1, matrix[k].sum())), 4)
                               for k, c in enumerate(classes)},
        "confusion": matrix.tolist(),
        "top_confusions": sorted(off, key=lambda item: -item[2])[:6],
        "validation_accuracy": [round(v, 4) for v in run.history.get("val_accuracy", [])],
        "training_seconds": round(run.seconds, 1),
    }
    text = markdown(report)
    print(text)
    trial = args.fraction != 1.0 or epochs != default_epochs or args.data is not None
    stem = "modelnet_difficulty" + ("_fast" if config.fast_mode() else "") + ("_trial" if trial else "")
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(RESULTS / f"{stem}.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
