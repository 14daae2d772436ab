"""Fit the simulator's realism effects (``simulate.scanner.REALISM_EFFECTS``) to the real development
scans' statistics: a small grid search, printing the statistics gap before and after.

The real scans are measured by ``geometry.image_statistics`` (never their per-pixel labels beyond what
those statistics summarise); simulated board and fruit scans are made with the real sensor's scanner
(``sim_vs_real.sensor_scanner``) and all realism effects on, cropped and measured alike
(``sim_vs_real.measure_simulated``). Three stages, each a grid over a few parameters, every point of
the grid scanned for each seed of ``--seeds``; each stage starts from the choices of the ones before:

1. **noise**, on board and fruit scans with depth noise only (no other effect, so they are quick; the
   first seed only, since the noise is measured on millions of pixels):
   ``noise_correlation`` (the share of the depth noise's variance that neighbours share) x
   ``noise_length`` (its correlation length in pixels), judged on the 3x3 over 5x5 window noise of
   each real scan; then ``noise_1m`` is set so that the measured noise at 1 m meets the real one
   (the shared part is partly absorbed by the plane fits, so the set value is larger than the
   measured one);
2. **board** against ``gpu_006``: ``bias_gain`` (the inter-reflected phasor's strength) x ``bias_blur``
   (the reflection lobe's footprint), judged on ``BOARD_TARGETS``;
3. **fruit** against ``apple_03``: ``reject_probability`` (the decoder's modulation check) x
   ``rim_rate`` (how often a grazing translucent rim errs), judged on ``FRUIT_TARGETS``, among them
   the share of the fruit's own pixels that hold a point against the real silhouette's fill (a
   decoder that refuses much of a translucent skin must not pass for one that measures it).

The gap of one statistic is |log(sim / real)| for sizes (shares of artefacts, offsets, noise) and
|sim - real| for shares within [0, 1]; the gap of a setting is the sum over the targets of the mean
over seeds. The "before" row is the simulator without realism effects (the sensor set of ``sim_vs_real``).

Writes ``realism_fit.json`` (every grid point's statistics and gap, the choice) and ``realism_fit.md``.
``simulate.scanner.REALISM`` holds the chosen values; ``tests/test_families.py`` checks that they
are the ones recorded here.

    python benchmarks/fit_realism.py [--data DIR] [--seeds 1 2] [--out benchmarks/results]

About 40 minutes on one core (46 scans of 2064 x 1544 pixels with every effect, 14 with noise only);
``--jobs 2`` scans the two seeds at once.
``--cache FILE`` keeps each scan's statistics, so that an interrupted fit resumes where it stopped.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import multiprocessing
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sim_vs_real  # noqa: E402

from pcfilter_lib import config  # noqa: E402
from pcfilter_lib.geometry.image_statistics import image_statistics  # noqa: E402
from pcfilter_lib.io.files import atomic_write_text  # noqa: E402
from pcfilter_lib.simulate.scanner import ALL_EFFECTS, ScannerConfig  # noqa: E402

# statistic: "log" (a size, compared by ratio) or "share" (compared by difference)
BOARD_TARGETS = {"artefact_share": "log", "offset_abs_mm_p50": "log", "offset_within_1mm": "share",
                 "offset_front_share": "share", "artefact_noise_mm_median": "log", "share_near_highlight": "share",
                 "share_large_blobs": "share", "noise_3px_over_5px": "share"}
FRUIT_TARGETS = {"artefact_share": "log", "share_silhouette": "share", "share_depth_edge": "share",
                 "object_fill": "share",
                 "offset_abs_mm_p50": "log", "offset_front_share": "share", "noise_3px_over_5px": "share"}
# Where the search starts: the realism parameters before any fit (guesses from the physics and from the
# real scans' numbers), so that the fit does not depend on its own earlier result.
START = {"label_floor": 1e-4, "bias_gain": 2.0, "bias_blur": 2.0, "reject_probability": 1e-3, "rim_cos": 0.3,
         "rim_rate": 0.02, "rim_offset": (1.5e-3, 10e-3), "edge_dropout": 0.5, "noise_correlation": 0.7,
         "noise_length": 2.5, "intensity_exposure": 0.01, "noise_1m": 1.2e-4}
NOISE_TARGETS = {"noise_3px_over_5px": "share"}
NOISE_GRID = {"noise_correlation": (0.6, 0.8, 0.95), "noise_length": (1.5, 3.0)}
BOARD_GRID = {"bias_gain": (1.0, 3.0, 8.0, 20.0, 50.0), "bias_blur": (2.0, 5.0, 10.0)}
FRUIT_GRID = {"reject_probability": (1e-3, 1e-2, 0.1), "rim_rate": (0.005, 0.02)}
# A simulated statistic compared with another real one: the share of the object's own pixels that hold a
# point (the simulation knows them) against the real scan's silhouette fill (its silhouette is the object's).
REAL_KEY = {"object_fill": "fill"}


def gap(rows: list[dict], real: dict, targets: dict) -> tuple[float, dict]:
    """The summed gap over ``targets`` and each statistic's own (mean over the scans in ``rows``)."""
    parts = {}
    for key, how in targets.items():
        values = [r[key] for r in rows if r.get(key) is not None]
        real_value = real.get(REAL_KEY.get(key, key))
        if not values or real_value is None:
            parts[key] = 1.0  # a statistic the simulation cannot even measure is a full miss
            continue
        sim = float(np.mean(values))
        parts[key] = (abs(np.log(max(sim, 1e-6) / max(real_value, 1e-6))) if how == "log"
                      else abs(sim - real_value))
    return float(sum(parts.values())), parts


CACHE: dict = {}
JOBS = [1]


def _measure(task: tuple[str, int, ScannerConfig]) -> dict:
    family, seed, scanner = task
    return json.loads(json.dumps(sim_vs_real.measure_simulated(family, seed, scanner, False)[0], default=float))


def run(family: str, scanner: ScannerConfig, seeds, cache: Path | None = None) -> list[dict]:
    """The statistics of one scan of ``family`` per seed with ``scanner`` (from ``cache`` where known),
    the seeds scanned in ``JOBS[0]`` processes at once."""
    keys = [json.dumps([family, seed, scanner.to_dict()], sort_keys=True) for seed in seeds]
    todo = [(family, seed, scanner) for seed, key in zip(seeds, keys, strict=True) if key not in CACHE]
    if todo:
        if JOBS[0] > 1 and len(todo) > 1:
            with multiprocessing.get_context("spawn").Pool(min(JOBS[0], len(todo))) as pool:
                results = pool.map(_measure, todo)
        else:
            results = [_measure(task) for task in todo]
        for (_, seed, _), stats in zip(todo, results, strict=True):
            CACHE[json.dumps([family, seed, scanner.to_dict()], sort_keys=True)] = stats
        if cache is not None:
            atomic_write_text(cache, json.dumps(CACHE) + "\n")
    return [CACHE[key] for key in keys]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=config.data_dir() / "realscans" / "organised")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--cache", type=Path, help="a JSON file of scans' statistics, read and extended")
    parser.add_argument("--jobs", type=int, default=1, help="processes that scan seeds at once (each ~3 GB)")
    args = parser.parse_args(argv)
    JOBS[0] = args.jobs
    if args.cache is not None and args.cache.is_file():
        CACHE.update(json.loads(args.cache.read_text()))
    start = time.perf_counter()
    real = {}
    for family, name in sim_vs_real.PAIRS.items():
        scan = sim_vs_real.read_real(args.data / f"{name}.ptx.gz")
        real[family] = image_statistics(scan["xyz"], scan["intensity"], scan["valid"], scan["artefact"])
    plain = sim_vs_real.sensor_scanner(ScannerConfig())
    start_point = replace(plain, effects=ALL_EFFECTS, **START)
    record = {"date": str(datetime.date.today()), "machine": platform.machine(), "seeds": args.seeds,
              "targets": {"board": BOARD_TARGETS, "fruit": FRUIT_TARGETS}, "stages": {}}
    chosen = {}
    # Stage 1: the depth noise alone, on both families (its statistics are those of the true pixels).
    noise_only = replace(start_point, effects=("noise", "correlated_noise"))
    points = []
    for values in itertools.product(*NOISE_GRID.values()):
        setting = dict(zip(NOISE_GRID, values, strict=True))
        total, parts, scans = 0.0, {}, {}
        for family in ("board", "fruit"):
            scans[family] = run(family, replace(noise_only, **setting), args.seeds[:1], args.cache)
            family_gap, family_parts = gap(scans[family], real[family], NOISE_TARGETS)
            total += family_gap
            parts.update({f"{family} {k}": v for k, v in family_parts.items()})
        points.append({"setting": setting, "gap": total, "parts": parts, "scans": scans})
        print(f"noise {setting}: gap {total:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    best = min(points, key=lambda p: p["gap"])
    chosen.update(best["setting"])
    # noise_1m: the set value that makes the measured noise at 1 m the real one, averaged over the families
    ratios = [np.mean([s["noise_at_1m_mm"] for s in best["scans"][f]]) / (noise_only.noise_1m * 1e3)
              for f in ("board", "fruit")]
    targets_1m = [real[f]["noise_at_1m_mm"] for f in ("board", "fruit")]
    chosen["noise_1m"] = round(float(np.mean(np.array(targets_1m) / np.array(ratios))) * 1e-3, 6)
    plain_noise = {f: run(f, replace(plain, effects=("noise",)), args.seeds[:1], args.cache)
                   for f in ("board", "fruit")}
    before_gap = sum(gap(plain_noise[f], real[f], NOISE_TARGETS)[0] for f in ("board", "fruit"))
    print(f"noise: chose {chosen}, gap {before_gap:.3f} -> {best['gap']:.3f}", flush=True)
    record["stages"]["noise"] = {"grid": {k: list(v) for k, v in NOISE_GRID.items()},
                                 "real": {f: {k: real[f][k] for k in ("noise_3px_over_5px", "noise_at_1m_mm")}
                                          for f in ("board", "fruit")},
                                 "before": {"gap": before_gap, "scans": plain_noise}, "points": points,
                                 "chosen": dict(chosen), "gap": best["gap"],
                                 "measured_over_set_noise_1m": [float(r) for r in ratios]}
    for family, grid, targets in (("board", BOARD_GRID, BOARD_TARGETS), ("fruit", FRUIT_GRID, FRUIT_TARGETS)):
        before_rows = run(family, plain, args.seeds, args.cache)
        before, before_parts = gap(before_rows, real[family], targets)
        print(f"{family}: without realism effects, gap {before:.3f} {before_parts}", flush=True)
        points = []
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values, strict=True))
            rows = run(family, replace(start_point, **(chosen | setting)), args.seeds, args.cache)
            total, parts = gap(rows, real[family], targets)
            points.append({"setting": setting, "gap": total, "parts": parts, "scans": rows})
            print(f"{family} {setting}: gap {total:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        best = min(points, key=lambda p: p["gap"])
        chosen.update(best["setting"])
        print(f"{family}: chose {best['setting']}, gap {before:.3f} -> {best['gap']:.3f}", flush=True)
        record["stages"][family] = {"grid": {k: list(v) for k, v in grid.items()}, "real": {
            k: real[family][REAL_KEY.get(k, k)] for k in targets}, "before": {"gap": before, "parts": before_parts,
                                                             "scans": before_rows},
                                    "points": points, "chosen": best["setting"], "gap": best["gap"]}
    record["chosen"] = chosen
    record["seconds"] = time.perf_counter() - start
    lines = ["Realism effects fitted to the development scans' statistics (`benchmarks/fit_realism.py`): "
             f"sensor scanner, seeds {args.seeds}; gap = sum of |log ratio| (sizes) and |difference| (shares).",
             "", "| family | statistic | real | without realism | fitted |", "|---|---|---|---|---|"]
    noise = record["stages"]["noise"]
    best = min(noise["points"], key=lambda p: p["gap"])
    for family in ("board", "fruit"):
        for key in ("noise_3px_over_5px", "noise_at_1m_mm"):
            old = np.mean([s[key] for s in noise["before"]["scans"][family]])
            new = np.mean([s[key] for s in best["scans"][family]])
            lines.append(f"| {family} (noise only) | {key} | {noise['real'][family][key]:.3g} | {old:.3g} | "
                         f"{new:.3g} (noise_1m {noise_only.noise_1m * 1e3:.3g} mm) |")
    lines.append(f"| both (noise only) | **gap** | 0 | {noise['before']['gap']:.2f} | {noise['gap']:.2f} |")
    for family in ("board", "fruit"):
        stage = record["stages"][family]
        best = min(stage["points"], key=lambda p: p["gap"])
        for key in stage["real"]:
            sim = [s[key] for s in best["scans"] if s.get(key) is not None]
            old = [s[key] for s in stage["before"]["scans"] if s.get(key) is not None]
            lines.append(f"| {family} | {key} | {stage['real'][key]:.3g} | "
                         f"{np.mean(old) if old else float('nan'):.3g} | {np.mean(sim) if sim else float('nan'):.3g} |")
        lines.append(f"| {family} | **gap** | 0 | {stage['before']['gap']:.2f} | {stage['gap']:.2f} |")
    lines += ["", f"Chosen: {json.dumps(chosen)}. Measured {record['date']} on {record['machine']}, "
              f"{record['seconds']:.0f} s."]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "realism_fit.md", "\n".join(lines) + "\n")
    atomic_write_text(args.out / "realism_fit.json", json.dumps(record, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
