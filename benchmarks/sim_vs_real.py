"""Simulated against real artefacts on the scanner's image: ``geometry.image_statistics`` side by side.

The two labelled real development scans as the scanner saw them (``--data``: PTX files with their
``NAME.outliers.gz`` labels, one line per pixel) are measured beside simulated scans of the family
each one belongs to: ``gpu_006`` (a graphics card) beside the board family, ``apple_03`` (a fruit)
beside the fruit family (``pcfilter_lib.simulate.families``). Each family is simulated three times, one
scan per seed of ``--seeds``:

- **drawn**: the scanners the shipped networks were trained with (``draw_scanner`` from a
  ``--size`` base, as ``recipes.common``'s mixed scan sets);
- **sensor**: the same scenes seen by one fixed scanner with the real scans' sensor (2064 x 1544
  pixels, focal length ``SENSOR_FOCAL_PX``) at their working distance (``SENSOR_DISTANCE``), so
  that pixel counts (blob sizes, distances to edges) mean the same lengths as on the real scans;
- **realistic sensor** and **realistic drawn**: the sensor set's scanner and the drawn ones with the
  simulator's realism effects on and their parameters fitted to these statistics
  (``scanner.realistic``, fitted by ``benchmarks/fit_realism.py``): phase bias from inter-reflected
  light, the decoder's contrast check, translucent rims, fewer mixed pixels, correlated depth noise
  and unsaturated intensity; the drawn set is what a network would be trained on.

The first two sets are made by the default simulator (generator version 3), whose scans do not change;
``--reuse FILE`` takes their statistics from an earlier ``sim_vs_real.json`` made with the same
version, seeds and size instead of scanning them again (the figure's drawn scan is made anew).

The real scans were cropped to the object by their author (every other pixel holds no point), so
each simulated scan is cropped alike before it is measured: the pixels that see the object (the
board and its parts, or the fruit; not the table or the plate) and the artefacts measured within
``CROP_REACH`` of the object's true points. Artefacts are label 0 of the simulator, the real scans'
label 1. Beside the measures of both, the simulated columns give what only a simulation knows: the
share of each artefact kind, the artefacts' offset along the ray from their true points, and the
true-labelled points farther from theirs than the depth noise can put them (the label rule's 1 mm
floor calls them true; the realistic set's floor is 0.1 mm). Fast mode: one seed, a 160x120 base and
no sensor-sized set (about a minute).

Writes ``sim_vs_real.json`` (every scan's statistics, the simulated scanners and the artefact kinds)
and ``sim_vs_real.md`` (the table: the real scan beside the mean and range of each simulated set),
and one figure per pair, ``sim_vs_real_{family}.png``: depth, intensity and labels of the real scan
above those of a drawn-scanner simulated scan and a realistic sensor one (realistic drawn in fast mode;
for each, the seed whose artefact share is the median of its set), each cropped to its object.

    python benchmarks/sim_vs_real.py [--data DIR] [--seeds 1 2 3 4 5] [--size 640x480] [--no-sensor]
                                     [--reuse benchmarks/results/sim_vs_real.json] [--out benchmarks/results]

Full size: about 6 minutes on one core (the forty 2064x1544 scans of the sensor and realistic sets are
most of it).

``--data`` defaults to ``<data folder>/realscans/organised``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from pcfilter_lib import config  # noqa: E402
from pcfilter_lib.geometry.image_statistics import (  # noqa: E402
    EDGE_JUMP,
    HIGHLIGHT_REACH,
    HIGHLIGHT_SHARE,
    LARGE_BLOB,
    NEAR,
    PLANE_NEIGHBOURS,
    blob_sizes,
    image_statistics,
    ray_offsets,
    silhouette,
)
from pcfilter_lib.io.files import atomic_write_text  # noqa: E402
from pcfilter_lib.io.ptx import read_ptx, read_ptx_labels  # noqa: E402
from pcfilter_lib.labels import ARTEFACT, ARTEFACT_KINDS, KIND_NAMES, REALISM_KINDS  # noqa: E402
from pcfilter_lib.simulate.dataset import GENERATOR, VERSION, make_scan  # noqa: E402
from pcfilter_lib.simulate.scanner import ScannerConfig, realistic  # noqa: E402
from pcfilter_lib.viz.colours import LABEL_HEX  # noqa: E402

PAIRS = {"board": "gpu_006", "fruit": "apple_03"}  # simulated family: the real scan of its kind
FIRST_OBJECT_SURFACE = {"board": 1, "fruit": 2}  # surface ids: 0 table, 1 board or plate, then the parts
NO_SURFACE = 255
CROP_REACH = 0.003  # m: artefacts off the object's pixels are kept within this of its true points
SENSOR = (2064, 1544)  # the real scans' sensor (width, height), pixels
SENSOR_FOCAL_PX = 2240.0  # their focal length, pixels (the scans' camera.json: 2240-2248)
SENSOR_DISTANCE = 0.45  # m: their median depth is 0.44-0.46 m
FEW = 200  # artefacts ringed in a figure where there are no more than this

# (row label, statistic, format); shares as percentages
ROWS = (
    ("artefact share of the object's points", "artefact_share", "{:.2%}"),
    ("pixel spacing (mm)", "spacing_mm", "{:.2f}"),
    (f"artefacts within {NEAR} px of a depth edge", "share_depth_edge", "{:.0%}"),
    ("  true pixels there (base rate)", "true_share_depth_edge", "{:.0%}"),
    (f"artefacts within {NEAR} px of the silhouette", "share_silhouette", "{:.0%}"),
    (f"artefacts within {NEAR} px of a hole", "share_hole_edge", "{:.0%}"),
    ("artefacts at silhouette or hole edge", "share_rim", "{:.0%}"),
    ("  true pixels there (base rate)", "true_share_rim", "{:.0%}"),
    (f"artefacts within {HIGHLIGHT_REACH:g} mm of a highlight", "share_near_highlight", "{:.0%}"),
    ("  true pixels there (base rate)", "true_share_near_highlight", "{:.0%}"),
    (f"artefacts in blobs of >= {LARGE_BLOB} px", "share_large_blobs", "{:.0%}"),
    ("artefact blobs", "blobs", "{:,.0f}"),
    ("blobs of one pixel", "blob_isolated_share", "{:.0%}"),
    ("blob size median (px)", "blob_px_median", "{:.1f}"),
    ("blob size p90 (px)", "blob_px_p90", "{:.0f}"),
    ("largest blob (px)", "blob_px_max", "{:,.0f}"),
    ("largest blob (mm^2 of image footprint)", "blob_mm2_max", "{:.1f}"),
    ("depth spread within small blobs (2-19 px), median (mm)", "small_blob_depth_spread_mm_median", "{:.2f}"),
    ("offset from the local plane, median abs. (mm)", "offset_abs_mm_p50", "{:.2f}"),
    ("offset p10 abs. (mm)", "offset_abs_mm_p10", "{:.2f}"),
    ("offset p90 abs. (mm)", "offset_abs_mm_p90", "{:.1f}"),
    ("offsets within 1 mm", "offset_within_1mm", "{:.0%}"),
    ("artefacts in front of the plane", "offset_front_share", "{:.0%}"),
    ("offset along the ray from the true point, median abs. (mm; simulated only)", "ray_offset_abs_mm_p50",
     "{:.1f}"),
    ("intensity of true pixels, median (as recorded)", "intensity_true_median", "{:.3g}"),
    ("intensity artefact / true (medians)", "intensity_ratio", "{:.2f}"),
    ("true intensity spread (p90 - p10) / median", "intensity_true_spread", "{:.2f}"),
    ("brightest pixel / true median", "intensity_max_over_median", "{:.1f}"),
    ("intensity ROC AUC for artefact (0.5 = none)", "intensity_auc", "{:.2f}"),
    ("artefacts darker than the true p10", "artefact_darker_than_true_p10", "{:.0%}"),
    ("silhouette pixels holding a point", "fill", "{:.1%}"),
    ("  the object's pixels holding a point (simulated only)", "object_fill", "{:.1%}"),
    ("holes in the silhouette", "holes", "{:,.0f}"),
    ("points per mm^2 of surface", "points_per_mm2", "{:.1f}"),
    ("noise on flat parts, median (mm)", "noise_mm_median", "{:.3f}"),
    ("noise at 1 m (mm; median of noise / z^2)", "noise_at_1m_mm", "{:.2f}"),
    ("  the simulator's noise_1m (mm)", "scanner_noise_1m_mm", "{:.2f}"),
    ("noise of 3x3 over 5x5 windows (1 = independent)", "noise_3px_over_5px", "{:.2f}"),
    ("noise within artefact blobs, median (mm)", "artefact_noise_mm_median", "{:.3f}"),
    ("  5x5 windows of artefact pixels measured", "artefact_noise_windows", "{:,.0f}"),
    ("true-labelled points > 3 sigma off their true point (simulated only)", "hidden_share", "{:.2%}"),
    ("  their offset along the ray, median (mm)", "hidden_offset_mm_p50", "{:.2f}"),
)


def read_real(path: Path) -> dict:
    """A labelled real scan: its PTX grid and the outlier flags of ``NAME.outliers[.gz]``."""
    scan = read_ptx(path)
    return {"xyz": scan["xyz"], "intensity": scan["intensity"], "valid": scan["valid"],
            "artefact": read_ptx_labels(path, scan["valid"])}


def object_crop(scan: dict, family: str) -> dict:
    """A simulated scan cut to its object as the real scans were: the pixels that see the object
    (``FIRST_OBJECT_SURFACE`` on), plus the artefacts measured within ``CROP_REACH`` of its true points."""
    surface, valid = scan["surface"], scan["valid"]
    artefact = valid & (scan["label"] == ARTEFACT)
    on_object = valid & (surface >= FIRST_OBJECT_SURFACE[family]) & (surface != NO_SURFACE)
    near = valid & artefact & ~on_object
    if near.any() and (on_object & ~artefact).any():
        distance, _ = cKDTree(scan["xyz"][on_object & ~artefact]).query(scan["xyz"][near],
                                                                         distance_upper_bound=CROP_REACH)
        near[near] = np.isfinite(distance)
    keep = on_object | near
    return {"xyz": scan["xyz"], "intensity": scan["intensity"], "valid": keep, "artefact": artefact & keep,
            "kind": np.where(keep, scan["kind"], 0), "clean_xyz": scan["clean_xyz"]}


def sensor_scanner(base: ScannerConfig) -> ScannerConfig:
    """One fixed scanner like the real scans' (``SENSOR``, ``SENSOR_FOCAL_PX``, ``SENSOR_DISTANCE``);
    baseline, depth range and exposure follow the distance as ``families.draw_scanner`` sets them."""
    return replace(base, width=SENSOR[0], height=SENSOR[1], focal=SENSOR_FOCAL_PX / SENSOR[0],
                   distance=SENSOR_DISTANCE, baseline=0.3 * SENSOR_DISTANCE,
                   depth_range=(0.4 * SENSOR_DISTANCE, 1.6 * SENSOR_DISTANCE), gain=base.gain * SENSOR_DISTANCE ** 2)


def measure_simulated(family: str, seed: int, scanner: ScannerConfig, randomise: bool) -> tuple[dict, dict]:
    """One simulated scan of ``family``, cropped to its object, and its statistics, with what only a
    simulation knows: the scanner's noise, the share of each artefact kind, the artefacts' offsets
    along the ray from their true points, and the true-labelled points that lie farther from theirs
    than the depth noise can put them (``hidden_share``)."""
    scan = make_scan(seed, 0, scanner, families={family: 1.0}, randomise=randomise)
    cut = object_crop(scan, family)
    stats = image_statistics(cut["xyz"], cut["intensity"], cut["valid"], cut["artefact"])
    ray = np.abs(ray_offsets(cut["xyz"], cut["clean_xyz"], cut["artefact"]))
    drawn = scan["meta"]["scanner"]
    kinds = cut["kind"][cut["artefact"]]
    # True-labelled points farther off than the depth noise can put them (it is clipped at 3 sigma along z):
    # errors the simulator makes but its label rule (1 mm + 3 sigma) calls true geometry.
    true = cut["valid"] & ~cut["artefact"]
    off = np.abs(ray_offsets(cut["xyz"], cut["clean_xyz"], true))
    points = cut["xyz"][true].astype(np.float64)
    ray_sigma = drawn["noise_1m"] * points[:, 2] * np.linalg.norm(points, axis=-1) * 1e3  # mm along the ray
    hidden = off > 3.03 * ray_sigma + 1e-3
    # The silhouette is that of the measured pixels: an object the decoder refuses in large parts shrinks it
    # without lowering the fill; the simulation knows the object's own pixels.
    object_pixels = (scan["surface"] >= FIRST_OBJECT_SURFACE[family]) & (scan["surface"] != NO_SURFACE)
    stats.update(seed=seed, size=[drawn["width"], drawn["height"]], distance_m=drawn["distance"],
                 object_fill=float(scan["valid"][object_pixels].mean()) if object_pixels.any() else None,
                 scanner_noise_1m_mm=drawn["noise_1m"] * 1e3,
                 ray_offset_abs_mm_p50=float(np.median(ray)) if len(ray) else None,
                 hidden_share=float(hidden.mean()) if len(hidden) else None,
                 hidden_offset_mm_p50=float(np.median(off[hidden])) if hidden.any() else None,
                 kinds={KIND_NAMES[c]: float((kinds == c).mean()) if len(kinds) else None
                        for c in ARTEFACT_KINDS + REALISM_KINDS})
    return stats, cut


def reusable(path: Path | None, seeds: list[int], size: list[int], sensor: bool) -> dict:
    """The drawn and sensor sets' statistics of an earlier run (``--reuse``), where it was made with this
    simulator version, these seeds, this base size and the same sensor; empty otherwise (with a note)."""
    if path is None:
        return {}
    earlier = json.loads(path.read_text())
    made = earlier.get("simulator", {})
    same = (made.get("generator") == GENERATOR and made.get("version") == VERSION and made.get("seeds") == seeds
            and made.get("base_size") == size and (made.get("sensor") is not None) == sensor)
    if not same:
        print(f"sim_vs_real: {path} was made with other settings; every set is scanned anew", flush=True)
        return {}
    return {name: rows for name, rows in earlier["simulated"].items() if name in ("drawn", "sensor")}


def summary(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return {"mean": None, "min": None, "max": None}
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def main_object(valid: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    """The bounding box (with ``margin`` pixels) of the largest connected piece of the silhouette."""
    labels, sizes = blob_sizes(silhouette(valid))
    rows, cols = np.nonzero(labels == np.argmax(sizes) + 1)
    h, w = valid.shape
    return (slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, h)),
            slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, w)))


def draw_pair(scans: list[dict], titles: list[str], path: Path) -> None:
    """Depth, intensity and labels of the real scan (top row) and the simulated ones (a row each),
    each cropped to its object; where a scan has at most ``FEW`` artefacts, each is ringed."""
    label_map = ListedColormap(["white", LABEL_HEX[1], LABEL_HEX[0]])
    fig, axes = plt.subplots(len(scans), 3, figsize=(13, 4.3 * len(scans)), layout="constrained", squeeze=False)
    for row, (scan, title) in enumerate(zip(scans, titles, strict=True)):
        crop = main_object(scan["valid"])
        valid = scan["valid"][crop]
        depth = np.where(valid, scan["xyz"][..., 2][crop] * 1e3, np.nan)
        intensity = np.where(valid, scan["intensity"][crop], np.nan)
        labels = np.where(valid, np.where(scan["artefact"][crop], 2, 1), 0)
        low, high = np.nanpercentile(depth, [1, 99])
        panels = ((depth, "viridis", low, high, "depth (mm)"),
                  (intensity, "inferno", 0.0, float(np.nanpercentile(intensity, 99)), "intensity (as recorded)"),
                  (labels, label_map, -0.5, 2.5, "label"))
        for ax, (image, cmap, vmin, vmax, name) in zip(axes[row], panels, strict=True):
            shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            bar = fig.colorbar(shown, ax=ax, shrink=0.8)
            bar.set_label(name)
            if name == "label":
                bar.set_ticks([0, 1, 2], labels=["no point", "true", "artefact"])
                rows, cols = np.nonzero(labels == 2)
                if 0 < len(rows) <= FEW:  # too few to see: ring each one
                    ax.scatter(cols, rows, s=40, facecolors="none", edgecolors=LABEL_HEX[0], linewidths=0.8)
            ax.set_title(f"{title}: {name.split(' (')[0]}", fontsize=9)
            ax.set_xlabel("image column (px)")
            ax.set_ylabel("image row (px)")
    fig.savefig(path, dpi=64)
    plt.close(fig)


def cell(stat: dict | None, fmt: str) -> str:
    if stat is None or stat.get("mean") is None:
        return "-"
    if stat["min"] == stat["max"]:
        return fmt.format(stat["mean"])
    return f"{fmt.format(stat['mean'])} ({fmt.format(stat['min'])}-{fmt.format(stat['max'])})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=config.data_dir() / "realscans" / "organised",
                        help="folder with gpu_006.ptx.gz and apple_03.ptx.gz and their .outliers.gz labels")
    parser.add_argument("--seeds", type=int, nargs="+", default=config.choose(full=[1, 2, 3, 4, 5], fast=[1]),
                        help="simulator seeds, one scan per family and set each (default 1-5; 1 in fast mode)")
    parser.add_argument("--size", default=config.choose(full="640x480", fast="160x120"),
                        help="base scan size WxH of the drawn scanners (their sizes are drawn around it)")
    parser.add_argument("--no-sensor", action="store_true",
                        help="skip the scans at the real sensor's size (the default in fast mode)")
    parser.add_argument("--reuse", type=Path,
                        help="an earlier sim_vs_real.json whose drawn and sensor sets (same simulator version, "
                             "seeds and size) are taken instead of scanned again")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    sensor = not (args.no_sensor or config.fast_mode())
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    real, real_scans = {}, {}
    for family, name in PAIRS.items():
        path = next((p for p in (args.data / f"{name}.ptx.gz", args.data / f"{name}.ptx") if p.is_file()), None)
        if path is None:
            raise SystemExit(f"sim_vs_real: {args.data} has no {name}.ptx.gz; it needs the two organised "
                             "development scans (see --data)")
        real_scans[family] = read_real(path)
        real[name] = image_statistics(**{k: real_scans[family][k] for k in ("xyz", "intensity", "valid",
                                                                              "artefact")})
        print(f"{name}: {real[name]['artefacts']} of {real[name]['pixels']} points false "
              f"({time.perf_counter() - start:.0f} s)", flush=True)

    base = ScannerConfig(width=width, height=height)
    sets = {"drawn": (base, True)} | ({"sensor": (sensor_scanner(ScannerConfig()), False),
                                       "realistic sensor": (sensor_scanner(realistic()), False)} if sensor else {})
    sets["realistic drawn"] = (realistic(base), True)
    figure_sets = ("drawn", "realistic sensor" if sensor else "realistic drawn")
    earlier = reusable(args.reuse, args.seeds, [width, height], sensor)
    simulated = {name: {family: [] for family in PAIRS} for name in sets}
    shown = {family: [real_scans[family]] for family in PAIRS}
    titles = {family: [f"real {PAIRS[family]}"] for family in PAIRS}
    for set_name, (scanner, randomise) in sets.items():
        for family in PAIRS:
            cuts = []
            if set_name in earlier:
                simulated[set_name][family] = earlier[set_name][family]
                print(f"{set_name} {family}: statistics of {args.reuse}", flush=True)
            else:
                for seed in args.seeds:
                    stats, cut = measure_simulated(family, seed, scanner, randomise)
                    simulated[set_name][family].append(stats)
                    cuts.append(cut if set_name in figure_sets else None)
                    print(f"{set_name} {family} seed {seed} ({stats['size'][0]}x{stats['size'][1]}): "
                          f"{stats['artefacts']} of {stats['pixels']} object points false "
                          f"({time.perf_counter() - start:.0f} s)", flush=True)
            if set_name in figure_sets:  # the figure shows the seed with the median artefact share
                shares = [s["artefact_share"] or 0.0 for s in simulated[set_name][family]]
                pick = int(np.argsort(shares)[len(shares) // 2])
                seed = args.seeds[pick]
                stats, cut = (simulated[set_name][family][pick], cuts[pick]) if cuts else measure_simulated(
                    family, seed, scanner, randomise)
                shown[family].append(cut)
                titles[family].append(f"{set_name} {family}, seed {seed} ({stats['size'][0]}x{stats['size'][1]})")
            del cuts
    for family in PAIRS:
        draw_pair(shown[family], titles[family], args.out / f"sim_vs_real_{family}.png")
    del shown

    columns = []
    for family, name in PAIRS.items():
        columns.append((f"{name} (real)", {k: {"mean": v, "min": v, "max": v} for k, v in real[name].items()
                                           if not isinstance(v, (list, dict))}))
        for set_name in sets:
            rows = simulated[set_name][family]
            stats = {key: summary(rows, key) for _, key, _ in ROWS}
            stats.update({f"kind {KIND_NAMES[c]}": summary([{"v": r["kinds"].get(KIND_NAMES[c])} for r in rows], "v")
                          for c in ARTEFACT_KINDS + REALISM_KINDS})
            columns.append((f"{family}, {set_name} scanners ({len(rows)})", stats))
    kind_rows = [(f"artefacts of kind {KIND_NAMES[c]} (simulated)", f"kind {KIND_NAMES[c]}", "{:.0%}")
                 for c in ARTEFACT_KINDS + REALISM_KINDS]
    header = "| measure | " + " | ".join(name for name, _ in columns) + " |"
    lines = [f"Real and simulated artefacts measured alike on the scanner's image "
             f"(`geometry.image_statistics`): the organised development scans from {args.data.name}/ beside "
             f"simulated scans ({GENERATOR} {VERSION}) of their families, one per seed {args.seeds}; "
             f"'drawn' scanners as the shipped networks were trained with (base {width}x{height})"
             + (f", 'sensor' one fixed scanner with the real sensor ({SENSOR[0]}x{SENSOR[1]} px, focal "
                f"{SENSOR_FOCAL_PX:g} px, {SENSOR_DISTANCE} m)" if sensor else "")
             + ", 'realistic' the " + ("sensor scanner and the drawn ones" if sensor else "drawn scanners")
             + " with the realism effects fitted to these statistics (`scanner.realistic`, "
             "`benchmarks/fit_realism.py`; their labels call a point false beyond 0.1 mm + 3 sigma, the others' "
             "beyond 1 mm + 3 sigma)"
             + ". Simulated scans are cropped to their object as the "
             f"real ones were. Simulated columns: mean (min-max) over scans. Depth edges: jumps of more than "
             f"{EDGE_JUMP:g} point spacings per pixel between true neighbours; offsets: to a plane fitted to the "
             f"{PLANE_NEIGHBOURS} nearest true pixels, positive towards the camera; highlights: pixels brighter than "
             f"{1 - HIGHLIGHT_SHARE:.0%} of the true ones.", "",
             header, "|---" * (len(columns) + 1) + "|"]
    for label, key, fmt in ROWS + tuple(kind_rows):
        lines.append("| " + " | ".join([label] + [cell(stats.get(key), fmt) for _, stats in columns]) + " |")
    lines += ["", f"Measured {datetime.date.today()} on {platform.machine()}, {time.perf_counter() - start:.0f} s"
              + (f"; the {' and '.join(earlier)} sets' statistics taken from an earlier run of the same simulator "
                 f"version, seeds and size ({args.reuse.name})" if earlier else "") + ". "
              "Figures: " + ", ".join(f"sim_vs_real_{family}.png" for family in PAIRS) + "."]
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out / "sim_vs_real.md", table + "\n")
    atomic_write_text(args.out / "sim_vs_real.json", json.dumps(
        {"date": str(datetime.date.today()), "machine": platform.machine(),
         "settings": {"edge_jump_spacings": EDGE_JUMP, "near_px": NEAR, "large_blob_px": LARGE_BLOB,
                      "plane_neighbours": PLANE_NEIGHBOURS, "crop_reach_m": CROP_REACH},
         "simulator": {"generator": GENERATOR, "version": VERSION, "base_size": [width, height], "seeds": args.seeds,
                       "sensor": {"size": list(SENSOR), "focal_px": SENSOR_FOCAL_PX, "distance_m": SENSOR_DISTANCE}
                       if sensor else None},
         "pairs": PAIRS, "real": real, "simulated": simulated,
         "table": {name: stats for name, stats in columns}}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
