"""Artefact filters for organised scans: the learned U-Net and the classical baselines, one interface.

A ``ScanFilter`` turns a scan (the dict of ``pcfilter_lib.io.scan``) into an (H, W) keep probability
and, through its threshold, an (H, W) bool keep mask (True = keep the measured point). Make one with
``unet_filter`` (a saved Keras model, by default the shipped ``weights/unet_filter.keras`` with the
threshold chosen on validation scans and recorded in its manifest) or ``baseline_filter`` (Open3D
statistical / radius outlier removal or the morphological opening of ``pcfilter_lib.baselines``).
``evaluate_filter`` measures a filter over scans: pooled confusion metrics and, for each artefact
kind, how many of its points were removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcfilter_lib import baselines, metrics

WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED_MODEL = WEIGHTS / "unet_filter.keras"


def manifest_path(model_path: str | os.PathLike) -> Path:
    """The manifest JSON written beside a model file (``name.keras`` -> ``name.json``)."""
    return Path(model_path).with_suffix(".json")


def read_filter_manifest(model_path: str | os.PathLike = SHIPPED_MODEL) -> dict:
    """The manifest beside ``model_path`` as a dict ({} when there is none)."""
    path = manifest_path(model_path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); retrain or restore the model's manifest") from error


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the decision threshold must lie strictly between 0 and 1, got {threshold}")
    return threshold


@dataclass
class ScanFilter:
    """A keep/artefact filter for organised scans.

    Exactly one of ``model`` (a Keras segmentation model giving P(keep) per pixel) and ``method``
    (a name of ``pcfilter_lib.baselines.METHODS`` with its ``params``) is set.
    """

    name: str
    model: object | None = None
    method: str | None = None
    params: dict = field(default_factory=dict)
    threshold: float = 0.5

    def __post_init__(self):
        if (self.model is None) == (self.method is None):
            raise ValueError("a ScanFilter needs exactly one of a model or a baseline method")
        if self.method is not None and self.method not in baselines.METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {baselines.METHODS}")
        self.threshold = _check_threshold(self.threshold)

    @property
    def validity(self) -> bool:
        """Whether the model reads the sixth, 0/1 validity channel."""
        return self.model is not None and int(self.model.input_shape[-1]) == 6

    def keep_probability(self, scan: Mapping) -> np.ndarray:
        """(H, W) float32 P(keep) for each pixel (a baseline gives 0 or 1); 0 where there is no point."""
        return self.keep_probabilities([scan])[0]

    def keep_probabilities(self, scans: Sequence[Mapping]) -> list[np.ndarray]:
        """``keep_probability`` of each scan; scans of one size share a network call."""
        if self.method is not None:
            return [baselines.keep_mask(s, self.method, **self.params).astype(np.float32) for s in scans]
        return predict_keep(self.model, scans, self.validity)

    def keep_mask(self, scan: Mapping) -> np.ndarray:
        """(H, W) bool: True where the scan has a point and the filter keeps it."""
        if self.method is not None:
            return baselines.keep_mask(scan, self.method, **self.params)
        return self.keep_probability(scan) >= self.threshold

    __call__ = keep_mask


def predict_keep(model, scans: Sequence[Mapping], validity: bool = True, batch_size: int = 4) -> list[np.ndarray]:
    """P(keep) (H, W) float32 of each scan from a U-Net: the scan's channels (``scan_inputs``), padded
    to the network's multiple, through the network, cropped back, and 0 where there is no point."""
    from pcfilter_lib.data.scans import scan_inputs
    from pcfilter_lib.models.unet import crop_to, multiple_of, pad_to_multiple

    multiple = multiple_of(model)
    out: list[np.ndarray | None] = [None] * len(scans)
    by_shape: dict[tuple, list[int]] = {}
    for i, scan in enumerate(scans):
        by_shape.setdefault(np.shape(scan["valid"]), []).append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            padded = []
            for i in chunk:
                x, _ = pad_to_multiple(scan_inputs(scans[i], validity), multiple)
                padded.append(x)
            prob = np.asarray(model.predict_on_batch(np.stack(padded)))
            for i, p in zip(chunk, prob, strict=True):
                shape = np.shape(scans[i]["valid"])
                p = crop_to(p, shape)[..., 0]
                out[i] = np.where(np.asarray(scans[i]["valid"], bool), p, 0.0).astype(np.float32)
    return out


def load_model_file(path: str | os.PathLike, shipped: Path, target: str):
    """The Keras model saved at ``path``, with clear errors for a missing or unloadable file
    (``shipped`` and ``target`` name the default model and how to train it)."""
    import keras

    import pcfilter_lib.losses  # noqa: F401  (registers the custom objects load_model needs)
    import pcfilter_lib.metrics  # noqa: F401
    import pcfilter_lib.models.pointnet  # noqa: F401

    path = Path(path)
    if not path.is_file():
        hint = (f"train it with 'python data_scripts/train_reference_models.py --target {target}'"
                if path == shipped else "check the path")
        raise FileNotFoundError(f"model file {path} does not exist; {hint}")
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as error:
        raise ValueError(f"{path} is not a loadable Keras model ({error})") from error


def _scan_filter(model, path: Path, threshold: float | None) -> ScanFilter:
    if len(model.input_shape) != 4 or model.input_shape[-1] not in (5, 6):
        raise ValueError(f"{path}: a scan filter takes (B, H, W, 5 or 6) input, this model takes {model.input_shape}")
    if threshold is None:
        threshold = read_filter_manifest(path).get("threshold", 0.5)
    return ScanFilter(name=path.stem, model=model, threshold=threshold)


def unet_filter(path: str | os.PathLike | None = None, threshold: float | None = None) -> ScanFilter:
    """The U-Net filter saved at ``path`` (default: the shipped one). The threshold is ``threshold``
    if given, else the one recorded in the manifest beside the model, else 0.5."""
    path = Path(SHIPPED_MODEL if path is None else path)
    return _scan_filter(load_model_file(path, SHIPPED_MODEL, "unet"), path, threshold)


def load_filter(path: str | os.PathLike | None = None, threshold: float | None = None, organised: bool = True):
    """A learned filter for scans (``organised``) or unorganised clouds. ``path`` None gives the shipped
    U-Net or point filter; a path gives whichever kind the saved model is (its input rank tells)."""
    from pcfilter_lib import point_filtering

    if path is None:
        return unet_filter(None, threshold) if organised else point_filtering.point_filter(None, threshold)
    path = Path(path)
    model = load_model_file(path, SHIPPED_MODEL, "unet")
    if len(model.input_shape) == 3:
        return point_filtering.wrap_model(model, path, threshold)
    if not organised:
        raise ValueError(f"{path} is a U-Net filter, which needs an organised scan; this input is an unorganised "
                         "cloud (use the point filter: leave out --model)")
    return _scan_filter(model, path, threshold)


def tuned_params(method: str, model_path: str | os.PathLike = SHIPPED_MODEL) -> dict:
    """The parameters of ``method`` tuned on validation scans, as recorded in the shipped manifest
    (``baselines.DEFAULTS`` when no manifest records them)."""
    if method not in baselines.METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {baselines.METHODS}")
    recorded = read_filter_manifest(model_path).get("baselines", {}).get(method, {}).get("params")
    return dict(recorded) if recorded else dict(baselines.DEFAULTS[method])


def baseline_filter(method: str, params: Mapping | None = None) -> ScanFilter:
    """A classical filter; ``params`` default to the tuned ones of ``tuned_params``."""
    params = tuned_params(method) if params is None else dict(params)
    return ScanFilter(name=method, method=method, params=params)


def evaluate_filter(scan_filter: ScanFilter, scans: Iterable[Mapping], progress: bool = False) -> dict:
    """Metrics of a filter pooled over ``scans``: tp, fn, fp, tn, every ``metrics.NAMES`` value, the
    number of scans, and ``kinds``: for each artefact kind its point count and the fraction removed
    (the recall of that kind; empty when the scans carry no ``kind``). ``scan_filter`` is a
    ``ScanFilter`` or a ``point_filtering.PointFilter``."""
    from tqdm.auto import tqdm

    from pcfilter_lib.simulate.scanner import ARTEFACT_KINDS, KIND_NAMES

    totals = np.zeros(4, np.int64)
    has_kinds = False
    kind_total = np.zeros(len(ARTEFACT_KINDS), np.int64)
    kind_removed = np.zeros(len(ARTEFACT_KINDS), np.int64)
    n = 0
    for scan in tqdm(scans, desc=f"evaluating {scan_filter.name}", unit="scan", disable=not progress):
        keep = scan_filter.keep_mask(scan)
        label = np.asarray(scan["label"])
        totals += metrics.confusion_counts(label, keep.astype(np.float32), threshold=0.5)
        n += 1
        if scan.get("kind") is None:  # e.g. PointCleanNet pairs: outlier or not, no kinds
            continue
        has_kinds, kind, artefact = True, np.asarray(scan["kind"]), label == 0
        for k, code in enumerate(ARTEFACT_KINDS):
            of_kind = artefact & (kind == code)
            kind_total[k] += of_kind.sum()
            kind_removed[k] += (of_kind & ~keep).sum()
    if n == 0:
        raise ValueError("evaluation needs at least one scan")
    tp, fn, fp, tn = (int(v) for v in totals)
    kinds = {KIND_NAMES[code]: {"points": int(kind_total[k]),
                                "removed": float(kind_removed[k] / kind_total[k]) if kind_total[k] else None}
             for k, code in enumerate(ARTEFACT_KINDS)} if has_kinds else {}
    return {"filter": scan_filter.name, "scans": n, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            **metrics.confusion_metrics(tp, fn, fp, tn), "kinds": kinds}


def iter_scans(files: Iterable[str | os.PathLike], arrays: tuple[str, ...] = ()):
    """Scans loaded one at a time from ``files`` (``arrays``: optional extra keys such as clean_xyz)."""
    from pcfilter_lib.io.scan import load_scan

    for path in files:
        yield load_scan(path, arrays=arrays)
