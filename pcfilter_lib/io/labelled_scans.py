"""Labelled organised scans of a user's own scanner, read from a folder, and the band of image columns
held out of them, for fine-tuning and measuring the U-Net filter.

Organised layouts, which may be mixed in one folder:

* a PTX scan ``name.ptx`` (or ``name.ptx.gz``, ``io.ptx``) with ``name.outliers`` (or
  ``name.outliers.gz``) beside it: one 0/1 line per PTX point line, positions without a point
  included (1 = outlier);
* an organised ``.ply`` or ``.pcd`` (``io.organised``) with a per-point ``label`` property (1 true
  surface, 0 artefact, as pcfilter writes them; any value where there is no point) or ``outlier``
  property (1 = outlier);
* a pcfilter scan ``.npz`` (``io.scan``) with its labels.

Each becomes a scan-like dict with ``xyz``, ``valid``, ``intensity``, ``normals`` and ``label``
(``labels.KEEP``, ``ARTEFACT`` or ``NO_POINT``). Everything here runs without Keras, so that a wrong
file, or a held-out band of one class only, is reported in one line before TensorFlow starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pcfilter_lib.io.clouds import CloudError, read_ply
from pcfilter_lib.io.labelled import load_labelled_scan
from pcfilter_lib.io.organised import read_cloud, read_pcd
from pcfilter_lib.io.ptx import is_ptx, label_path, read_ptx_labels
from pcfilter_lib.io.scan import load_scan
from pcfilter_lib.labels import ARTEFACT, KEEP, NO_POINT

MARGIN = 8  # pixels of empty border kept around a part when it is cut to its points' bounding box


def labelled_scan(scan: Mapping, outlier: np.ndarray, name: str = "scan") -> dict:
    """A scan-like dict (``xyz``, ``valid``, ``intensity``, ``normals``) with its ``label`` (``KEEP``,
    ``ARTEFACT``, ``NO_POINT``) from (H, W) outlier flags, and a ``name``."""
    valid = np.asarray(scan["valid"], bool)
    label = np.where(valid, np.where(np.asarray(outlier, bool), ARTEFACT, KEEP), NO_POINT).astype(np.uint8)
    return {"xyz": scan["xyz"], "valid": valid, "intensity": scan["intensity"], "normals": scan["normals"],
            "label": label, "name": name}


def is_organised_file(path: Path) -> bool | None:
    """True for a file that can only hold an organised labelled scan (PTX with labels), False for a
    PointCleanNet pair, None where the file itself must say (``.npz``, ``.ply``, ``.pcd``)."""
    if is_ptx(path):
        return True
    return None if path.suffix.lower() in (".npz", ".ply", ".pcd") else False


def _is_grid(valid: np.ndarray) -> bool:
    """Whether a scan's pixel grid is an image (more than one row and column), not a 1 x N list."""
    return min(np.shape(valid)) > 1


def read_labelled_scan(path: str | os.PathLike) -> dict | None:
    """One labelled organised scan, or None when the file holds an unorganised cloud.

    Raises:
        FileNotFoundError: a PTX file without its labels.
        CloudError: the file cannot be read, has no labels, labels other than 0 and 1, a label count
            that differs from the point count, or an outlier where there is no point.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        scan = load_labelled_scan(path)
        valid = np.asarray(scan["valid"], bool)
        if not _is_grid(valid):
            return None
        return labelled_scan(scan, valid & (np.asarray(scan["label"]) == ARTEFACT), path.name)
    cloud = read_cloud(path)
    if not cloud["organised"]:
        return None
    if cloud["intensity"] is None:
        raise CloudError(f"{path} has no intensity field, which the U-Net reads")
    valid = np.asarray(cloud["valid"], bool)
    if is_ptx(path):
        return labelled_scan(cloud, read_ptx_labels(path, valid), path.name)
    columns = read_ply(path) if suffix == ".ply" else read_pcd(path)[0]
    if "label" in columns:
        values, name = np.asarray(columns["label"]).reshape(valid.shape), "label (1 true surface, 0 artefact)"
        outlier = values == ARTEFACT
        good = np.isin(values, (KEEP, ARTEFACT)) | ~valid
    elif "outlier" in columns:
        values, name = np.asarray(columns["outlier"]).reshape(valid.shape), "outlier (1 outlier, 0 true surface)"
        outlier = values == 1
        good = np.isin(values, (0, 1)) | ~valid
    else:
        raise CloudError(f"{path}: no per-point 'label' or 'outlier' property; its properties are {sorted(columns)}")
    if not good.all():
        raise CloudError(f"{path}: the {name} property must be 0 or 1 at every point, found "
                         f"{np.unique(values[~good])[:5].tolist()}")
    return labelled_scan(cloud, outlier & valid, path.name)


def labelled_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that may hold a labelled scan or cloud, in the order of their names."""
    return sorted(p for p in folder.iterdir() if p.is_file() and (
        p.suffix.lower() in (".ply", ".pcd", ".npz")
        or (p.suffix.lower() == ".xyz" and p.with_suffix(".outliers").is_file())
        or (is_ptx(p) and label_path(p) is not None)))


def folder_is_organised(folder: str | os.PathLike) -> bool:
    """Whether a folder of labelled files holds organised scans (for the U-Net) rather than
    unorganised clouds (for the neighbour filter): any PTX with labels, or any ``.npz`` scan, ``.ply``
    or ``.pcd`` whose points lie on an image grid."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    files = labelled_files(folder)
    if any(is_organised_file(p) for p in files):
        return True
    for path in (p for p in files if is_organised_file(p) is None):
        try:
            if (_is_grid(load_scan(path, arrays=())["valid"]) if path.suffix.lower() == ".npz"
                    else read_cloud(path)["organised"]):
                return True
        except (CloudError, KeyError, ValueError, OSError):
            continue  # reported by the reader of whichever filter the folder goes to
    return False


def read_labelled_scans(folder: str | os.PathLike) -> list[dict]:
    """Every labelled organised scan of a folder (not its subfolders), in the order of their names.

    Raises:
        FileNotFoundError: the folder does not exist or holds no labelled organised scan.
        NotADirectoryError: it is a file.
        CloudError: a file is not a readable labelled scan (``read_labelled_scan``), or the folder
            also holds unorganised clouds, which the U-Net cannot learn from.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; --data names a folder of labelled scans")
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder {folder} does not exist")
    scans, unorganised = [], []
    for path in labelled_files(folder):
        scan = None if is_organised_file(path) is False else read_labelled_scan(path)
        (unorganised if scan is None else scans).append(path if scan is None else scan)
    if unorganised:
        raise CloudError(f"{folder} holds unorganised clouds ({unorganised[0].name}) beside organised scans; the "
                         "U-Net learns from organised scans only: put them in separate folders")
    if not scans:
        raise FileNotFoundError(f"{folder} holds no labelled organised scans; it needs name.ptx[.gz] with "
                                "name.outliers[.gz], organised .ply/.pcd files with a 'label' or 'outlier' "
                                "property, or pcfilter scans (.npz)")
    return scans


def column_band(valid: np.ndarray, share: float) -> np.ndarray:
    """(H, W) bool: the pixels with a point whose column lies beyond the ``1 - share`` quantile of the
    columns of all points (a band at the right-hand end of the scan's points)."""
    columns = np.nonzero(valid)[1]
    limit = np.quantile(columns, 1 - share)
    return valid & (np.arange(valid.shape[1])[None, :] > limit)


def part(scan: Mapping, pixels: np.ndarray, margin: int = MARGIN) -> dict:
    """The scan with only ``pixels`` kept as points (the others no point), cut to their bounding box
    with ``margin`` empty pixels around it: a network run on it sees nothing of the rest of the scan.

    Raises:
        ValueError: ``pixels`` holds no point.
    """
    pixels = np.asarray(pixels, bool) & np.asarray(scan["valid"], bool)
    rows, cols = np.nonzero(pixels)
    if not len(rows):
        raise ValueError(f"{scan.get('name', 'the scan')}: the part holds no point")
    h, w = pixels.shape
    box = (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)),
           slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)))
    keep = pixels[box]
    return {"xyz": np.where(keep[..., None], np.asarray(scan["xyz"])[box], np.nan), "valid": keep,
            "intensity": np.where(keep, np.asarray(scan["intensity"])[box], 0).astype(np.float32),
            "normals": np.where(keep[..., None], np.asarray(scan["normals"])[box], 0).astype(np.float32),
            "label": np.where(keep, np.asarray(scan["label"])[box], NO_POINT).astype(np.uint8),
            "name": scan.get("name", "scan")}


def split_scans(scans: Sequence[Mapping], share: float) -> tuple[list[dict], list[dict]]:
    """(training parts, held-out blocks) of labelled scans (``column_band``, ``part``), checked to
    hold both classes each (``check_both``)."""
    train, held = [], []
    for scan in scans:
        band = column_band(scan["valid"], share)
        rest = np.asarray(scan["valid"], bool) & ~band
        if not band.any() or not rest.any():
            raise ValueError(f"{scan.get('name', 'a scan')}: its points span too few columns to hold out {share:.0%} "
                             "of them")
        train.append(part(scan, rest))
        held.append(part(scan, band))
    check_both(train, "the training part (outside the held-out blocks)")
    check_both(held, "the held-out blocks")
    return train, held


def check_both(scans: Sequence[Mapping], where: str) -> None:
    """A one-line ValueError unless the scans' points hold both true points and artefacts."""
    label = np.concatenate([np.asarray(s["label"])[np.asarray(s["valid"], bool)] for s in scans])
    artefacts = int((label == ARTEFACT).sum())
    if artefacts in (0, len(label)):
        only = "true points" if artefacts == 0 else "artefacts"
        raise ValueError(f"{where} holds only {only} ({len(label)} points): label some points of each class, or "
                         "change --holdout")
