"""How every filter does on the real labelled scans, in both forms: organised, as the scanner saw them
(PTX), and as lists of points (PointCleanNet pairs).

``--data`` is the folder ``data_scripts/download_realscans.py`` fills (default ``<data folder>/realscans``):
``NAME.xyz`` + ``NAME.outliers`` (1 = outlier), and the same scans organised in ``organised/``
(``NAME.ptx[.gz]`` + ``NAME.outliers[.gz]``, one label per PTX point line; ``--organised`` names
another folder). The organised scans are read as ``pcfilter filter`` reads them
(``cli.inputs.read_filter_input``, ``io.ptx``) and the filters are made as the command line makes them
(``cli.inputs.make_filter``), so the organised rows measure what ``pcfilter filter`` does on a PTX file;
the point rows read the pairs as ``pcfilter evaluate`` does (``io.clouds.read_pointcleannet``).

Per form, per scan and as the mean over scans: balanced accuracy, mean IoU (``nn.scores``, label 1 =
keep), keep-recall, outlier recall and, for the learned filters, the ROC AUC of their score (P(keep),
whose AUC equals that of P(artefact) with the artefacts as positives: how well it ranks, whatever the
threshold). Three kinds of rows, in separate tables:

- **results**, nothing tuned on the real scans: the U-Net (shipped, ``pcfilter filter``'s default for
  organised input; organised only), the point filter (``--model points``, at its card's threshold and
  at ``threshold_rule="balanced"``), the neighbour filter (``--model neighbours``), SOR, ROR and the
  morphological opening (``--method``, organised only) with the command line's parameters (tuned on
  simulated scans, lengths in point spacings), SOR and ROR tuned on the point filter's simulated
  validation clouds (``filters.labelled_clouds.reference_filters``), and SOR with Open3D's defaults;
- **development figures**: SOR, ROR (points) and the opening (organised) grid-searched on each scan
  itself, for the best mean IoU and for the best balanced accuracy. They are upper bounds for those
  filters, not results;
- **held out**: the neighbour filter fine-tuned on one half of a scan (``recipes.finetune``: the half
  split along the longest axis of the points at their median, threshold chosen on a held-out block of
  that half) and measured on the other half, both ways, beside the shipped filter on the same half,
  for every scan with at least ``FINETUNE_MIN_ARTEFACTS`` artefacts in each half.

The organised and point forms hold the same points in the same order (in different frames: the
camera's and the one the pairs were exported in). The script checks that, and for every filter run
on both forms it reports on how many points the two decisions agree and the largest difference of
P(keep): SOR and ROR depend only on distances, so they must agree; a learned filter agrees as far as
its features ignore the frame.

Markdown and JSON go to ``--out``. The JSON's ``all_rows`` holds every row with its ``form`` and ``kind``;
its ``rows`` holds the point-form rows of the filters the earlier record of this benchmark measured
(``EARLIER_FILTERS``, the oracles and the halves), under the same names, for the readers of that record.

    python benchmarks/realscan_quality.py [--data DIR] [--organised DIR] [--model FILE.keras] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from pcfilter_lib import config, runtime

runtime.setup(seed=0)

from pcfilter_lib.cli.inputs import make_filter, read_filter_input
from pcfilter_lib.filters.baselines import BaselineFilter, tune
from pcfilter_lib.filters.evaluation import has_probability
from pcfilter_lib.filters.labelled_clouds import SCORES, cloud_scores, labelled_pairs, reference_filters
from pcfilter_lib.filters.neighbours import neighbour_filter
from pcfilter_lib.filters.points import SHIPPED_POINT_MODEL
from pcfilter_lib.geometry.point_features import neighbourhoods
from pcfilter_lib.io.clouds import cloud_scan, read_pointcleannet
from pcfilter_lib.io.files import atomic_write_text
from pcfilter_lib.io.labelled import LabelledCloud
from pcfilter_lib.io.ptx import is_ptx, label_path, read_ptx_labels, stem_of
from pcfilter_lib.recipes.finetune import FinetuneSettings, finetune_neighbour_filter
from pcfilter_lib.timing import clock

FINETUNE_MIN_ARTEFACTS = 100  # a half with fewer artefacts can neither teach nor judge a filter
FORMS = {"organised": "organised (PTX grid, as `pcfilter filter scan.ptx` reads it)",
         "points": "points (name.xyz + name.outliers)"}
KINDS = {"result": "Results (nothing tuned on the real scans)",
         "development": "Development figures (tuned on the scan itself: upper bounds, not results)",
         "held out": "Fine-tuned on one half of the scan, measured on the other (held out)"}
# The development grid searches; the ROR radius in point spacings, the opening's squares in pixels.
ORACLE_GRIDS = {"sor": {"nb_neighbors": [5, 10, 20, 40, 80, 160, 320, 640],
                        "std_ratio": [0.125, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]},
                "ror": {"nb_points": [1, 2, 4, 8, 16, 32, 64, 128, 256],
                        "radius": [1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48]},
                "morph": {"erosion": [1, 3, 5, 7, 9, 11, 15, 21, 27, 35],
                          "dilation": [1, 3, 5, 7, 9, 11, 15, 21, 31, 41, 51]}}
ORACLE_FORMS = {"sor": "points", "ror": "points", "morph": "organised"}  # SOR and ROR decide alike on both forms
NAMES = {"balanced_accuracy": "balanced accuracy", "mean_iou": "mean IoU", "keep_recall": "keep-recall",
         "outlier_recall": "outlier recall", "roc_auc": "ROC AUC"}


def _setting(params: dict, spacings: bool = False) -> str:
    return ", ".join(f"{k} {v:.3g}" + " spacings" * (spacings and k == "radius") for k, v in params.items())


def candidates(model: Path) -> list[dict]:
    """The filters of the results rows: name, setting, the filter, the forms it runs on and a key
    shared by the rows of one network (its P(keep) is computed once per scan and form)."""
    points = argparse.Namespace(method=None, threshold=None,
                                model="points" if model == SHIPPED_POINT_MODEL else str(model))
    cli = {name: make_filter(argparse.Namespace(method=method, model=name if method is None else None,
                                                threshold=None))
           for name, method in (("unet", None), ("neighbours", None), ("sor", "sor"), ("ror", "ror"),
                                ("morph", "morph"))}
    cli["points"] = make_filter(points)
    reference = {name: (setting, candidate) for name, setting, candidate in reference_filters(model)}
    both = ("organised", "points")
    rows = [("U-Net", "unet", ("organised",), "unet"),
            ("point filter", "points", both, "points"),
            ("neighbour filter (simulation only)", "neighbours", both, "neighbours"),
            ("SOR, --method sor", "sor", both, None),
            ("ROR, --method ror", "ror", both, None),
            ("opening, --method morph", "morph", ("organised",), None)]
    out = []
    for name, key, forms, score_key in rows:
        candidate = cli[key]
        if has_probability(candidate):
            setting = f"threshold {candidate.threshold:g} (card)"
        else:
            setting = _setting(candidate.params, spacings=candidate.reference_spacing == 1.0)
        out.append({"filter": name, "setting": setting, "candidate": candidate, "forms": forms, "key": score_key})
    balanced = reference["point filter, balanced"]
    out.insert(2, {"filter": "point filter, balanced", "setting": balanced[0], "candidate": balanced[1],
                   "forms": both, "key": "points"})
    for name in ("SOR, tuned", "ROR, tuned", "SOR, Open3D defaults"):
        out.append({"filter": name, "setting": reference[name][0], "candidate": reference[name][1], "forms": both,
                    "key": None})
    return out


LEGEND = ("U-Net: the shipped U-Net, `pcfilter filter`'s default for organised input. Point filter: the shipped "
          "patch filter (`--model points`, the default for point clouds). Neighbour filter: `--model neighbours`. "
          "SOR / ROR / opening with `--method`: the command line's parameters, tuned on the U-Net's simulated "
          "validation scans (ROR's radius in point spacings). SOR, ROR tuned: tuned on the point filter's "
          "simulated validation clouds. Learned filters at their model card's threshold; 'balanced': the "
          "threshold of the best balanced accuracy on the point filter's simulated validation clouds.")
# The rows under the JSON's "rows" key, as the earlier record of this benchmark held them (points only,
# these filters, the oracles and the halves): chapter 5b reads them when the real scans are absent.
EARLIER_FILTERS = ("point filter", "point filter, balanced", "SOR, tuned", "ROR, tuned", "SOR, Open3D defaults",
                   "neighbour filter (simulation only)")


def read_forms(pair: Path, organised: Path | None) -> dict:
    """One real scan in both forms: ``points`` (the cloud-like dict of its pair, as ``pcfilter evaluate``
    reads it) and, where the organised folder holds it, ``organised`` (the scan as ``pcfilter filter``
    reads its PTX file); each with ``label`` (N,) 1 = keep over its points, in file order.

    Raises:
        ValueError: the two forms do not hold the same points in the same order with the same labels.
    """
    points, outlier = read_pointcleannet(pair)
    forms = {"points": {"scan": cloud_scan(points, label=(~outlier).astype(np.uint8)),
                        "label": (~outlier).astype(np.uint8), "file": pair.name}}
    if organised is not None:
        scan = read_filter_input(organised)
        valid = np.asarray(scan["valid"], bool)
        grid_outlier = read_ptx_labels(organised, valid)[valid]
        xyz = np.asarray(scan["xyz"])[valid]
        sample = np.linspace(0, len(points) - 1, min(len(points), 400)).astype(int)
        if len(xyz) != len(points) or not np.array_equal(grid_outlier, outlier):
            raise ValueError(f"{organised.name} holds {len(xyz)} points ({int(grid_outlier.sum())} outliers), "
                             f"{pair.name} {len(points)} ({int(outlier.sum())}): not the same scan")
        distances = [np.linalg.norm(p[sample, None] - p[None, sample], axis=-1) for p in (xyz, points)]
        scale = max(float(np.abs(xyz).max()), float(np.abs(points).max()))  # single-precision rounding of either
        if np.abs(distances[0] - distances[1]).max() > 1e-5 * scale:
            raise ValueError(f"{organised.name} and {pair.name} hold their points in different orders or shapes")
        forms["organised"] = {"scan": scan, "label": (~grid_outlier).astype(np.uint8), "file": organised.name,
                              "apart": rigid_residual(xyz, points)}
    return forms


def rigid_residual(a: np.ndarray, b: np.ndarray) -> float:
    """The largest distance between matching points of ``a`` and ``b`` after the rigid motion that
    brings ``a`` closest to ``b`` (least squares, Kabsch): how far apart the two forms' coordinates
    are, frames aside."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a0, b0 = a - a.mean(axis=0), b - b.mean(axis=0)
    u, _, vt = np.linalg.svd(a0.T @ b0)
    turn = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    return float(np.linalg.norm(a0 @ turn - b0, axis=1).max())


def run_filter(entry: dict, form: dict, cache: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(keep, P(keep) or None) over a form's points, in file order, as ``pcfilter filter`` decides:
    keep where P(keep) >= the filter's threshold."""
    candidate, scan = entry["candidate"], form["scan"]
    valid = np.asarray(scan["valid"], bool)
    if not has_probability(candidate):
        return candidate.keep_mask(scan)[valid], None
    if entry["key"] not in cache:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cache[entry["key"]] = np.asarray(candidate.keep_probability(scan))[valid]
    prob = cache[entry["key"]]
    return prob >= candidate.threshold, prob


def oracle(scan: dict, label: np.ndarray, method: str) -> list[dict]:
    """The grid points of ``ORACLE_GRIDS[method]`` with the best mean IoU and the best balanced
    accuracy on this very scan: one row each (``baselines.tune``, one neighbour search for the whole
    grid; the ROR radius in the scan's point spacings)."""
    grid = ORACLE_GRIDS[method]
    valid = np.asarray(scan["valid"], bool)
    labelled = {**scan, "label": np.full(valid.shape, 255, np.uint8)}  # 255: no point, not counted
    labelled["label"][valid] = label
    if method == "morph":  # the grid cropped to its points: the same opening (outside the grid counts as empty)
        rows, cols = (np.flatnonzero(valid.any(axis=axis)) for axis in (1, 0))
        crop = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        labelled = {"xyz": np.asarray(scan["xyz"])[crop], "valid": valid[crop], "label": labelled["label"][crop]}
    scale = 1.0
    if "radius" in grid:
        scale = BaselineFilter(method, method, {"radius": 1.0}, reference_spacing=1.0).scan_params(scan)["radius"]
    search = {k: [v * scale for v in values] if k == "radius" else values for k, values in grid.items()}
    rows = []
    for metric in ("mean_iou", "balanced_accuracy"):
        found, _ = tune([labelled], method, search, metric=metric)
        params = {k: grid[k][search[k].index(v)] for k, v in found.items()}
        keep = BaselineFilter(method, method, params, reference_spacing=1.0).keep_mask(scan)[valid]
        row = cloud_scores(label, keep)
        edge = [k for k, v in params.items() if v in (grid[k][0], grid[k][-1])]
        rows.append({"filter": f"oracle {method.upper() if method != 'morph' else 'opening'} for {NAMES[metric]} "
                               "(upper bound)",
                     "setting": _setting(params, spacings=True) + (f" (edge of grid: {', '.join(edge)})" * bool(edge)),
                     "params": params, **row})
    return rows


THRESHOLD_ORACLES = ("U-Net", "point filter", "neighbour filter (simulation only)")


def oracle_threshold(name: str, label: np.ndarray, prob: np.ndarray) -> dict:
    """A learned filter at the threshold on its P(keep) with the best balanced accuracy on this very
    scan (among 201 quantiles of its P(keep)): what its ranking allows, an upper bound."""
    best = None
    for threshold in np.unique(np.quantile(prob, np.linspace(0, 1, 201))):
        row = cloud_scores(label, prob >= threshold, prob)
        if best is None or row["balanced_accuracy"] > best[1]["balanced_accuracy"]:
            best = float(threshold), row
    return {"filter": f"oracle threshold of the {name} for balanced accuracy (upper bound)",
            "setting": f"threshold {best[0]:.3g}", "threshold": best[0], **best[1]}


def finetune_rows(name: str, points, outlier, settings: FinetuneSettings | None = None) -> list[dict]:
    """The shipped neighbour filter fine-tuned on each half of a scan and scored on the other half,
    beside the shipped filter on the same half."""
    settings = settings or FinetuneSettings()
    axis = int(np.ptp(points, axis=0).argmax())
    upper = points[:, axis] > np.median(points[:, axis])
    if min(int((outlier & half).sum()) for half in (upper, ~upper)) < FINETUNE_MIN_ARTEFACTS:
        return []
    shipped, rows = neighbour_filter(), []
    for number, (train, test) in enumerate(((~upper, upper), (upper, ~upper)), start=1):
        run = finetune_neighbour_filter([LabelledCloud(f"{name} other half", points[train], ~outlier[train])],
                                        shipped, settings)
        label = (~outlier[test]).astype(np.uint8)
        for filter_name, candidate in (("neighbour filter, fine-tuned on the other half", run.filter),
                                       ("neighbour filter (simulation only)", shipped)):
            prob = candidate.keep_probability_points(points[test])
            rows.append({"form": "points", "kind": "held out", "scan": f"{name}, half {number}",
                         "filter": filter_name,
                         "setting": f"threshold {candidate.threshold:g}" + (
                             f", {run.seconds:.0f} s of training" if candidate is run.filter else ""),
                         **cloud_scores(label, prob >= candidate.threshold, prob)})
    return rows


def mean_rows(rows: list[dict]) -> list[dict]:
    """Per form and filter of the results, each score's mean over the scans."""
    means = []
    for form, name in dict.fromkeys((r["form"], r["filter"]) for r in rows if r["kind"] == "result"):
        found = [r for r in rows if r["kind"] == "result" and r["form"] == form and r["filter"] == name]
        means.append({"form": form, "kind": "result", "scan": "mean", "filter": name, "setting": found[0]["setting"],
                      **{k: None if any(r[k] is None for r in found) else float(np.mean([r[k] for r in found]))
                         for k in SCORES}})
    return means


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[dict], scans: list[str]) -> list[str]:
    """The markdown lines of one form's and kind's rows, scan by scan, then the means."""
    lines = ["| scan | filter | setting | " + " | ".join(NAMES[k] for k in SCORES) + " |",
             "|---|---|---|" + "---|" * len(SCORES)]
    for scan in [*scans, "mean"]:
        for row in (r for r in rows if r["scan"] == scan):
            lines.append(f"| {scan} | {row['filter']} | {row['setting']} | "
                         + " | ".join(_cell(row[k]) for k in SCORES) + " |")
    return lines


def summary(rows: list[dict], scans: list[str]) -> list[str]:
    """One line per filter of the results: balanced accuracy / ROC AUC / mean IoU per form and scan."""
    columns = [(form, scan) for form in FORMS for scan in [*scans, "mean"]]
    lines = ["| filter | " + " | ".join(f"{scan}, {form}" for form, scan in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name in dict.fromkeys(r["filter"] for r in rows if r["kind"] == "result"):
        cells = []
        for form, scan in columns:
            row = next((r for r in rows if r["kind"] == "result" and r["form"] == form and r["scan"] == scan
                        and r["filter"] == name), None)
            cells.append("" if row is None else " / ".join(_cell(row[k]) for k in
                                                           ("balanced_accuracy", "roc_auc", "mean_iou")))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def agreement_table(agreement: list[dict]) -> list[str]:
    lines = ["| scan | filter | points | same decision | largest difference of P(keep) |", "|---|---|---|---|---|"]
    for row in agreement:
        spread = "-" if row["max_probability_difference"] is None else f"{row['max_probability_difference']:.2g}"
        lines.append(f"| {row['scan']} | {row['filter']} | {row['points']} | {row['same']} "
                     f"({row['same'] / row['points']:.2%}) | {spread} |")
    return lines


def organised_files(folder: Path | None) -> dict[str, Path]:
    """NAME -> the labelled PTX file of ``folder`` (empty when there is none)."""
    if folder is None or not folder.is_dir():
        return {}
    return {stem_of(p): p for p in sorted(folder.iterdir()) if p.is_file() and is_ptx(p) and label_path(p)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of name.xyz + name.outliers pairs, as data_scripts/download_realscans.py lays "
                             "it out (default: <data folder>/realscans)")
    parser.add_argument("--organised", type=Path, default=None,
                        help="folder of the same scans as NAME.ptx[.gz] + NAME.outliers[.gz] (default: "
                             "DATA/organised)")
    parser.add_argument("--model", type=Path, default=SHIPPED_POINT_MODEL,
                        help="the point filter's .keras file, its model card beside it (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for realscan_quality.*")
    args = parser.parse_args(argv)
    data = args.data or config.data_dir() / "realscans"
    pairs = labelled_pairs(data)
    if not pairs:
        raise SystemExit(f"realscan_quality: {data} holds no name.xyz + name.outliers pairs; get the real scans "
                         "with data_scripts/download_realscans.py")
    if not args.model.is_file():
        raise SystemExit(f"realscan_quality: no model file {args.model}")
    organised = organised_files(args.organised or data / "organised")
    start = time.perf_counter()
    entries = candidates(args.model)
    rows, halves, agreement, clouds = [], [], [], []
    for pair in pairs:
        name = pair.stem
        forms = read_forms(pair, organised.get(name))
        decisions = {}
        for form_name, form in ((f, forms[f]) for f in FORMS if f in forms):
            cache = {}
            for entry in (e for e in entries if form_name in e["forms"]):
                keep, prob = run_filter(entry, form, cache)
                decisions[form_name, entry["filter"]] = keep, prob
                rows.append({"form": form_name, "kind": "result", "scan": name, "filter": entry["filter"],
                             "setting": entry["setting"], **cloud_scores(form["label"], keep, prob)})
            for method in (m for m, f in ORACLE_FORMS.items() if f == form_name):
                rows += [{"form": form_name, "kind": "development", "scan": name, **row}
                         for row in oracle(form["scan"], form["label"], method)]
            if form_name == "organised":  # the networks' rankings at their best threshold on the scan
                for entry in (e for e in entries if e["key"] and e["filter"] in THRESHOLD_ORACLES):
                    rows.append({"form": form_name, "kind": "development", "scan": name,
                                 **oracle_threshold(entry["filter"], form["label"], cache[entry["key"]])})
            print(f"{name}, {form_name}: {len(form['label'])} points ({time.perf_counter() - start:.0f} s)",
                  flush=True)
        for entry in (e for e in entries if len(e["forms"]) == 2 and "organised" in forms):
            (keep_a, prob_a), (keep_b, prob_b) = decisions["organised", entry["filter"]], decisions["points",
                                                                                                   entry["filter"]]
            agreement.append({"scan": name, "filter": entry["filter"], "points": len(keep_a),
                              "same": int((keep_a == keep_b).sum()),
                              "max_probability_difference": None if prob_a is None else float(
                                  np.abs(prob_a.astype(np.float64) - prob_b).max())})
        points, outlier = read_pointcleannet(pair)
        clouds.append({"scan": name, "points": len(points), "outliers": int(outlier.sum()),
                       "spacing": neighbourhoods(points, 1).spacing,
                       "forms": {k: v["file"] for k, v in forms.items()},
                       "forms_apart": forms["organised"]["apart"] if "organised" in forms else None})
        halves += finetune_rows(name, points.astype(np.float64), outlier)
        print(f"{name}: fine-tuned halves ({time.perf_counter() - start:.0f} s)", flush=True)
    rows += mean_rows(rows)
    rows += halves
    scans = [c["scan"] for c in clouds]
    missing = [c["scan"] for c in clouds if "organised" not in c["forms"]]
    where = f"{data.name}/organised/" if args.organised is None else f"{args.organised.name}/"
    lines = [f"# Filters on {len(scans)} real labelled scans ({', '.join(scans)})", "",
             f"Both forms of each scan: organised ({where}: the PTX grid, read and "
             "filtered as `pcfilter filter` does) and as points (name.xyz + name.outliers in "
             f"{data.name}/). Label 1 = keep; outlier recall = share of false points removed; ROC AUC of the "
             "learned filter's P(keep), which equals that of P(artefact), '-' for the yes/no filters. "
             + (f"No organised form for {', '.join(missing)}. " if missing else ""), "", LEGEND, "",
             "## Summary: balanced accuracy / ROC AUC / mean IoU of the results", "", *summary(rows, scans), ""]
    for form, title in FORMS.items():
        for kind in ("result", "development"):
            chosen = [r for r in rows if r["form"] == form and r["kind"] == kind]
            if chosen:
                lines += [f"## {title}: {KINDS[kind].lower()}", "", *table(chosen, scans), ""]
    if halves:
        lines += [f"## {FORMS['points']}: {KINDS['held out'].lower()}", "",
                  "Split along the longest axis of the points at their median.", "",
                  *table(halves, sorted({r["scan"] for r in halves})), ""]
    if agreement:
        apart = "; ".join(f"{c['scan']} {c['forms_apart'] * 1e6:.1f} µm ({c['forms_apart'] / c['spacing']:.1%} of its "
                          "point spacing)" for c in clouds if c["forms_apart"] is not None)
        lines += ["## The two forms agree", "",
                  "The same points in both forms (checked: count, order, labels), in different frames; after the "
                  f"rigid motion that matches them best, their coordinates lie at most {apart} apart (the two "
                  "files' rounding). On how many points each filter decides alike; a point near a filter's cut "
                  "may fall on either side.", "", *agreement_table(agreement), ""]
    lines.append(f"Measured {datetime.date.today()}, {time.perf_counter() - start:.0f} s.")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "realscan_quality.md", text + "\n")
    point_entries = [e for e in entries if e["key"] == "points"]
    earlier = [r for r in rows if r["form"] == "points" and (r["kind"] != "result" or r["filter"] in EARLIER_FILTERS)]
    atomic_write_text(args.out / "realscan_quality.json", json.dumps(
        {"date": str(datetime.date.today()), "device": clock.device_report(), "data": data.name,
         "kinds": KINDS, "forms": FORMS, "clouds": clouds, "all_rows": rows, "rows": earlier,
         "point_filter": {"model": args.model.name, "card_threshold": point_entries[0]["candidate"].threshold,
                          "balanced_threshold": point_entries[1]["candidate"].threshold},
         "oracle_grids": ORACLE_GRIDS, "agreement": agreement}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
