"""``pcfilter evaluate``: measure a filter on one split of a scan dataset, on a folder of labelled
clouds in the PointCleanNet layout (name.xyz + name.outliers, 1 = outlier), or on a folder of
labelled organised scans (name.ptx or name.ptx.gz + name.outliers or name.outliers.gz, one line per
PTX point line, ``io.ptx``). Beside the confusion figures it gives the ROC AUC of the filter's
P(artefact) where the filter has one (the learned filters), n/a where it has not (the classical
methods, whose answer is yes or no)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from pcfilter_lib import filters, runtime  # filters' names load Keras when first used, after runtime.setup
from pcfilter_lib.cli.app import Interrupts
from pcfilter_lib.cli.inputs import make_filter, needs_keras
from pcfilter_lib.cli.options import LOG_PROGRESS, check_model, check_threshold, progress_bar
from pcfilter_lib.filters.evaluation import has_probability, pooled_roc_auc
from pcfilter_lib.geometry.point_features import FLOAT32_COORDINATE_LIMIT
from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet
from pcfilter_lib.io.files import read_manifest
from pcfilter_lib.io.organised import read_cloud
from pcfilter_lib.io.ptx import is_ptx, label_path, read_ptx_header, read_ptx_labels, stem_of
from pcfilter_lib.labels import ARTEFACT, KEEP, NO_POINT
from pcfilter_lib.nn.scores import confusion_metrics, defined_or_none, undefined, why_undefined
from pcfilter_lib.simulate.dataset import split_files


def _evaluation_data(args: argparse.Namespace):
    """(description, scans or clouds, organised, points left out) for ``evaluate``: a split of a scan
    dataset, or a folder of PointCleanNet pairs name.xyz + name.outliers (1 = outlier), read now so that
    a bad file is reported before TensorFlow starts. Points of a pair with NaN or infinite coordinates
    are left out of the scores with their labels, and counted (a filter cannot keep what has no
    position: scored, they would count as true points removed); scans mark such pixels invalid
    themselves."""
    folder = Path(args.data)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {folder} is not a folder")
    manifest = read_manifest(folder)
    if manifest is not None:
        if not any(name.startswith(f"{args.split}/") for name in manifest["files"]):
            raise ValueError(f"{folder} holds no {args.split} scans; choose another --split")
        files = split_files(folder, args.split)
        named = ({**_within_reach(file, scan), "name": file.name}
                 for file, scan in zip(files, filters.iter_scans(files), strict=True))
        return f"{len(files)} {args.split} scans of {folder}", named, True, 0
    pairs = sorted(p for p in folder.glob("*.xyz") if p.with_suffix(".outliers").is_file())
    ptx = sorted(p for p in folder.iterdir() if p.is_file() and is_ptx(p))
    if ptx:
        return _organised_data(folder, ptx, pairs)
    if not pairs:
        raise FileNotFoundError(f"{folder} holds neither a manifest.json (a scan dataset: make one with 'pcfilter "
                                "simulate'), nor name.xyz + name.outliers pairs (PointCleanNet layout), nor organised "
                                "scans name.ptx[.gz] + name.outliers[.gz]")
    clouds, left_out = [], 0
    for path in pairs:
        points, outlier = read_pointcleannet(path)
        finite = np.isfinite(points).all(axis=1)  # a point without coordinates is neither kept nor removed
        if not finite.any():
            raise ValueError(f"{path}: none of its {len(points)} points has finite coordinates (all NaN or "
                             "infinite), so there is nothing to measure; fix the file or move the pair out of "
                             f"{folder}")
        left_out += int((~finite).sum())
        clouds.append({**cloud_scan(points[finite], label=~outlier[finite]), "name": path.name})
    return f"{len(pairs)} point clouds (.xyz + .outliers) of {folder}", clouds, False, left_out


def _organised_data(folder: Path, ptx: list[Path], pairs: list[Path]):
    """(description, scans, True) of a folder of labelled PTX scans; every file's labels and header are
    checked now, its points read when it is measured (one scan in memory at a time)."""
    if pairs:
        raise ValueError(f"{folder} holds both organised scans (.ptx) and point clouds (.xyz + .outliers); the "
                         "U-Net measures the first and not the second: put them in separate folders")
    for path in ptx:
        if label_path(path) is None:
            raise FileNotFoundError(f"{path} has no labels beside it: add {stem_of(path)}.outliers (or "
                                    ".outliers.gz), one 0/1 line per PTX point line (1 = outlier), or move it out of "
                                    f"{folder}")
        read_ptx_header(path)
    return (f"{len(ptx)} organised scans (.ptx + .outliers) of {folder}", (_labelled_ptx(path) for path in ptx), True,
            0)


def _labelled_ptx(path: Path) -> dict:
    """A PTX scan with its labels (``KEEP``, ``ARTEFACT``, ``NO_POINT`` where it has no point)."""
    scan = read_cloud(path)
    if scan["far"]:
        raise ValueError(f"{path}: {scan['far']} points lie too far from the origin to measure distances; give the "
                         "coordinates in metres")
    valid = scan["valid"]
    outlier = read_ptx_labels(path, valid)
    label = np.where(valid, np.where(outlier, ARTEFACT, KEEP), NO_POINT).astype(np.uint8)
    return _within_reach(path, {**scan, "label": label, "name": path.name})


def _within_reach(path: Path, scan: dict) -> dict:
    """``scan``, refused if a point lies beyond ``FLOAT32_COORDINATE_LIMIT``, where the U-Net's
    single-precision features overflow: its labels count every point, so none can be dropped."""
    xyz = np.asarray(scan["xyz"])[np.asarray(scan["valid"], bool)]
    if xyz.size and float(np.abs(xyz.astype(np.float64)).max()) > FLOAT32_COORDINATE_LIMIT:
        raise ValueError(f"{path}: points lie beyond ±{FLOAT32_COORDINATE_LIMIT:.1e}, too far from the origin to "
                         "measure distances between scan points in single precision; give the coordinates in metres")
    return scan


def _evaluate_per_file(scan_filter, scans, args: argparse.Namespace) -> dict:
    """Each file measured alone, its row printed at once; the pooled counts from the rows."""

    rows, pool = [], []
    if not args.json:
        print(f"{'file':<28} {'points':>9} {'outliers':>9} {'mean IoU':>9} {'bal. acc.':>9} {'keep-rec.':>9} "
              f"{'outl. rec.':>10} {'ROC AUC':>8}")
    for scan in scans:
        row = {"file": scan["name"], **filters.evaluate_filter(scan_filter, [scan], roc=True, pool=pool)}
        rows.append(row)
        if not args.json:
            print(f"{row['file']:<28} {row['tp'] + row['fn']:>9} {row['fp'] + row['tn']:>9} "
                  f"{_value(row['mean_iou']):>9} {_value(row['balanced_accuracy']):>9} {_value(row['recall']):>9} "
                  f"{_value(row['tnr']):>10} {_value(row['roc_auc']):>8}", flush=True)
    vague = sum(bool(undefined(row)) for row in rows)
    if vague and not args.json:
        print(f"n/a: undefined on that file ({vague} of {len(rows)}): it holds no true points or no outliers, or the "
              "filter kept or removed nothing there, so the rate is 0 / 0")
    counts = {key: sum(row[key] for row in rows) for key in ("tp", "fn", "fp", "tn")}
    kinds = {}
    for kind in rows[0]["kinds"]:
        points = sum(row["kinds"][kind]["points"] for row in rows)
        removed = sum(row["kinds"][kind]["points"] * (row["kinds"][kind]["removed"] or 0) for row in rows)
        kinds[kind] = {"points": points, "removed": removed / points if points else None}
    return {"filter": scan_filter.name, "scans": len(rows), **counts, **confusion_metrics(**counts),
            "roc_auc": pooled_roc_auc(pool), "kinds": kinds, "files": rows}


def _value(metric: float | None) -> str:
    """A metric for a table: four decimals, or n/a where the data leave it undefined (NaN, or None:
    a ROC AUC of a filter without a probability, or of points of one class)."""
    return "n/a" if metric is None or math.isnan(metric) else f"{metric:.4f}"


def _auc_line(result: dict, scan_filter) -> str:
    """The ROC AUC of P(artefact), or why there is none."""
    if not has_probability(scan_filter):
        return "n/a (a yes/no filter: it gives no probability to rank the points by)"
    if result["roc_auc"] is None:
        return "n/a (the points hold only true points or only outliers)"
    return f"{result['roc_auc']:.4f}"


def _print_evaluation(result: dict, what: str, scan_filter, args: argparse.Namespace) -> None:
    params = result["params"]
    print(f"{result['filter']} on {what}"
          + (f" (threshold {scan_filter.threshold:g})" if args.method is None else f" ({params})"))
    print(f"  confusion (1 = keep): TP {result['tp']}  FN {result['fn']}  FP {result['fp']}  TN {result['tn']}")
    for name in ("mean_iou", "balanced_accuracy", "f1", "recall", "false_omission_rate", "iou_keep", "iou_artefact"):
        label = {"recall": "keep-recall (true points kept)"}.get(name, name.replace("_", " "))
        print(f"  {label:<32} {_value(result[name])}")
    print(f"  {'ROC AUC of P(artefact)':<32} {_auc_line(result, scan_filter)}")
    for kind, row in result["kinds"].items():
        removed = "no points" if row["removed"] is None else f"{row['removed']:.4f} removed"
        print(f"  artefact kind {kind:<18} {row['points']:>9} points, {removed}")
    if result["note"]:
        print(f"  note: {result['note']}")
    if result["left_out"]:
        print(f"  note: left out {result['left_out']} points with NaN or infinite coordinates, and their labels "
              "(no filter can keep or remove a point without a position); the figures count the other points")


def run(args: argparse.Namespace) -> int:
    """Measure a filter on one split of a scan dataset or on a folder of labelled clouds."""
    check_threshold(args)
    check_model(args)
    what, scans, organised, left_out = _evaluation_data(args)
    if args.method == "morph" and not organised:
        raise ValueError("--method morph works on the pixel grid of an organised scan; these are unorganised "
                         "clouds (use the point filter, or --method sor / ror)")
    if args.model == "unet" and not organised:
        raise ValueError("the U-Net filter needs organised scans; these are unorganised clouds")
    if needs_keras(args, organised):
        runtime.setup(seed=None)  # keep TensorFlow's start-up logs off stderr
    scan_filter = make_filter(args, organised)
    if args.per_file:
        result = _evaluate_per_file(scan_filter, scans, args)
    else:
        result = filters.evaluate_filter(scan_filter, scans, progress=LOG_PROGRESS if args.json else progress_bar(),
                                         roc=True)
    Interrupts.check()
    dataset = read_manifest(Path(args.data)) is not None  # a split of a scan dataset, not a folder of files
    result.update(split=args.split if dataset else None, data=str(args.data),
                  threshold=scan_filter.threshold if args.method is None else None,
                  params=getattr(scan_filter, "params", None) or None)
    result["note"] = why_undefined(result, {"recall": "keep-recall", "tnr": "outlier recall (tnr)"})
    result["left_out"] = left_out
    if args.json:
        files = {"files": [defined_or_none(row) for row in result["files"]]} if "files" in result else {}
        print(json.dumps({**defined_or_none(result), **files}))
    else:
        _print_evaluation(result, what, scan_filter, args)
    return 0
