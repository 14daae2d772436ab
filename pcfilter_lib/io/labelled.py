"""Labelled clouds of a user's own scanner, read from a folder, for fine-tuning and measuring a filter.

Three layouts are read, and may be mixed in one folder:

* the PointCleanNet pair ``name.xyz`` + ``name.outliers`` (one 0/1 line per point, 1 = outlier);
* a ``.ply`` with a per-point ``label`` property (1 = true surface, 0 = artefact, as pcfilter writes
  them) or an ``outlier`` property (1 = outlier, as PointCleanNet counts);
* a pcfilter scan ``.npz`` (``io.scan``): its measured pixels with their labels;
* an organised scan ``name.ptx`` (or ``name.ptx.gz``, ``io.ptx``) with ``name.outliers`` (or
  ``name.outliers.gz``) beside it: one 0/1 line per PTX point line, positions without a point
  included (1 = outlier); its measured points with their labels.

Every cloud becomes a ``LabelledCloud`` (points and a keep flag per point). Labels are checked when
read, so that a wrong file is reported in one line before any training starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcfilter_lib.io.clouds import CloudError, read_ply, read_pointcleannet
from pcfilter_lib.io.organised import check_fits
from pcfilter_lib.io.ptx import is_ptx, label_path, read_ptx, read_ptx_labels
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import ARTEFACT, KEEP

LAYOUTS = ("name.xyz + name.outliers pairs, .ply files with a 'label' or 'outlier' property, pcfilter scans (.npz), "
           "or PTX scans name.ptx[.gz] with name.outliers[.gz]")


@dataclass
class LabelledCloud:
    """One labelled cloud.

    Attributes:
        name: the file it came from (without folder).
        points: (N, 3) float64 coordinates, finite.
        keep: (N,) bool, True for true surface, False for an artefact.
    """

    name: str
    points: np.ndarray
    keep: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def read_labelled_cloud(path: str | os.PathLike) -> LabelledCloud:
    """One labelled cloud from a ``.xyz`` (with its ``.outliers`` beside it), ``.ply``, ``.npz`` or
    ``.ptx[.gz]`` (with its ``.outliers[.gz]`` beside it) file.

    Raises:
        FileNotFoundError: the file (or the ``.outliers`` of an ``.xyz``) is missing.
        CloudError: the file cannot be read, has no labels, labels other than 0 and 1, a label count
            that differs from the point count, or NaN or infinite coordinates.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xyz", ".outliers"):
        points, outlier = read_pointcleannet(path)
        keep = ~outlier
    elif suffix == ".ply":
        points, keep = _ply_labels(path)
    elif suffix == ".npz":
        points, keep = _scan_labels(path)
    elif is_ptx(path):
        check_fits(path)  # a header of absurd size is refused in one line, as read_cloud refuses it
        ptx = read_ptx(path)
        outlier = read_ptx_labels(path, ptx["valid"])
        points, keep = ptx["xyz"][ptx["valid"]], ~outlier[ptx["valid"]]
    else:
        raise CloudError(f"{path}: not a labelled cloud; use {LAYOUTS}")
    points = np.asarray(points, np.float64)
    if not np.isfinite(points).all():
        bad = int((~np.isfinite(points).all(axis=1)).sum())
        raise CloudError(f"{path}: {bad} points have NaN or infinite coordinates; drop them (and their labels) first")
    return LabelledCloud(path.name if suffix != ".outliers" else path.with_suffix(".xyz").name, points, keep)


def read_labelled_folder(folder: str | os.PathLike) -> list[LabelledCloud]:
    """Every labelled cloud of a folder (not its subfolders), in the order of their names.

    Raises:
        FileNotFoundError: the folder does not exist or holds no labelled cloud.
        NotADirectoryError: it is a file.
        CloudError: a file is not a readable labelled cloud (``read_labelled_cloud``).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; --data names a folder of labelled clouds")
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and (
        p.suffix.lower() in (".ply", ".npz") or (p.suffix.lower() == ".xyz" and p.with_suffix(".outliers").is_file())
        or (is_ptx(p) and label_path(p) is not None)))
    if not files:
        raise FileNotFoundError(f"{folder} holds no labelled clouds; it needs {LAYOUTS}")
    return [read_labelled_cloud(path) for path in files]


def check_both_classes(clouds: list[LabelledCloud], where: str) -> None:
    """A one-line ValueError unless the clouds hold both true points and artefacts (a filter cannot
    learn, nor a threshold be chosen, from one class)."""
    artefacts = sum(int((~cloud.keep).sum()) for cloud in clouds)
    total = sum(len(cloud.keep) for cloud in clouds)  # the labels: a part of a cloud may come without its points
    if artefacts == 0 or artefacts == total:
        only = "true points" if artefacts == 0 else "artefacts"
        raise ValueError(f"{where} holds only {only} ({total} points): label some points of each class")


def _ply_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    columns = read_ply(path)
    missing = [axis for axis in "xyz" if axis not in columns]
    if missing:
        raise CloudError(f"{path}: the vertices lack the coordinates {missing}")
    points = np.stack([columns[axis] for axis in "xyz"], axis=1)
    if "label" in columns:
        values, keep_value, name = columns["label"], KEEP, "label (1 true surface, 0 artefact)"
    elif "outlier" in columns:
        values, keep_value, name = columns["outlier"], 0, "outlier (1 outlier, 0 true surface)"
    else:
        raise CloudError(f"{path}: no per-point 'label' or 'outlier' property; its properties are {sorted(columns)}")
    if not np.isin(values, (0, 1)).all():
        found = np.unique(values)[:5].tolist()
        raise CloudError(f"{path}: the {name} property must be 0 or 1, found {found}")
    return points, values == keep_value


def load_labelled_scan(path: str | os.PathLike) -> dict:
    """A pcfilter scan ``.npz`` whose measured pixels are each labelled ``KEEP`` or ``ARTEFACT``.

    Raises:
        CloudError: the file is not a pcfilter scan, has no labels, or labels a measured pixel otherwise.
    """
    try:
        scan = load_scan(path, arrays=())
    except (KeyError, ValueError, OSError) as error:
        raise CloudError(f"{path}: not a pcfilter scan ({error})") from error
    if "label" not in scan:
        raise CloudError(f"{path}: the scan has no labels")
    if not np.isin(np.asarray(scan["label"])[np.asarray(scan["valid"], bool)], (KEEP, ARTEFACT)).all():
        raise CloudError(f"{path}: measured pixels must be labelled {KEEP} (true) or {ARTEFACT} (artefact)")
    return scan


def _scan_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    scan = load_labelled_scan(path)
    valid = np.asarray(scan["valid"], bool)
    return np.asarray(scan["xyz"], np.float64)[valid], np.asarray(scan["label"])[valid] == KEEP
