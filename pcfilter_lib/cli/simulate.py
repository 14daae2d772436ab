"""``pcfilter simulate``: a dataset of structured-light scans of bins of parts, circuit boards or fruit."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pcfilter_lib import config
from pcfilter_lib.cli.options import MAX_PARTS, MAX_SEED, check_jobs, cluster_tasks, option_range, progress_bar
from pcfilter_lib.io.files import RecipeMismatch, check_output_folder
from pcfilter_lib.simulate import dataset
from pcfilter_lib.simulate.scanner import ScannerConfig


def parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--size must be two positive whole numbers WIDTHxHEIGHT like 640x480, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(part) for part in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(f"--split must be three non-negative fractions train/val/test summing to 1, like "
                         f"0.8/0.1/0.1; got {text!r}")
    return parts


def parse_families(text: str) -> dict[str, float]:
    """``bin=0.4,board=0.35,fruit=0.25`` (or ``board``, one family alone) as {family: share}."""
    families = {}
    for item in text.split(","):
        name, _, share = item.strip().partition("=")
        try:
            families[name] = float(share) if share else 1.0
        except ValueError:
            families[name] = math.nan
    if not all(math.isfinite(v) and v >= 0 for v in families.values()):
        raise ValueError(f"--families must be family=share pairs with non-negative shares, like "
                         f"bin=0.4,board=0.35,fruit=0.25; got {text!r}")
    if sum(families.values()) <= 0:
        raise ValueError(f"--families {text!r}: the shares add up to 0, so no family could be drawn; give at least "
                         "one family a share above 0, like bin=1")
    return families


def _shown(key: tuple[str, ...], value) -> str:
    """A recipe value of a dataset's manifest as the option that sets it would be written."""
    if value is None:
        return "off" if key[-1] == "semantic" else "none"
    if key[-1] in ("randomise", "semantic"):
        return "on" if value else "off"
    if key[-1] == "split":
        return "/".join(f"{share:g}" for share in value)
    if key[-1] == "n_parts":
        return "/".join(map(str, value))
    if key[-1] == "families":
        return ",".join(f"{name}={share:g}" for name, share in value.items())
    if key[-1] == "mesh_files":
        return " ".join(Path(mesh["path"]).name for mesh in value) or "none"
    if key[-1] == "scanner":
        return f"{value.get('width')}x{value.get('height')}"
    return str(value)


OPTIONS = {"seed": "--seed", "n": "--n", "split": "--split", "n_parts": "--min-parts/--max-parts",
           "mesh_files": "--mesh", "families": "--families", "randomise": "--random-scanner",
           "semantic": "--semantic", "scanner": "--size"}


def other_options(error: RecipeMismatch, out: str) -> ValueError:
    """``prepare_folder``'s refusal of a dataset made with other options, naming each option with the
    folder's value and this run's."""
    parts = []
    for key, old, new in error.differences:
        option = OPTIONS.get(key[-1])
        if option == "--size" and _shown(key, old) == _shown(key, new):
            parts.append("the scanner model (another version of pcfilter made the folder)")
        elif option:
            parts.append(f"{option} {_shown(key, old)} (this run: {_shown(key, new)})")
        else:
            parts.append(f"{'.'.join(key)} {old!r} (this run: {new!r})")
    return ValueError(f"--out {out} already holds other data, a dataset simulated with other options: "
                      f"{'; '.join(parts)}; give the folder's options to resume it, or choose another --out")


def run(args: argparse.Namespace) -> int:
    """Simulate a dataset of structured-light scans of bins of parts, circuit boards or fruit."""
    width, height = parse_size(args.size) if args.size else config.choose(full=(640, 480), fast=(160, 120))
    split = parse_split(args.split)
    families = parse_families(args.families)
    option_range("--n", args.n, 1, dataset.MAX_SCANS, "a whole number")
    option_range("--seed", args.seed, 0, MAX_SEED, "a whole number")
    option_range("--max-parts", args.max_parts, 0, MAX_PARTS, "a whole number")
    option_range("--min-parts", args.min_parts, 0, args.max_parts, "a whole number")
    check_jobs(args)
    check_output_folder(args.out, "--out")
    scanner = ScannerConfig(width=width, height=height)
    try:
        with cluster_tasks(args, "scan") as tasks:  # each scan a task on a cluster, or one after another here
            stats = dataset.write_dataset(args.out, args.n, args.seed, scanner, split=split,
                                          n_parts=(args.min_parts, args.max_parts), mesh_files=args.mesh or (),
                                          progress=progress_bar(), families=families, randomise=args.random_scanner,
                                          semantic=args.semantic, tasks=tasks or dataset.one_after_another)
    except RecipeMismatch as error:
        raise other_options(error, args.out) from error
    what = f"({', '.join(families)}; a scanner drawn per scan)" if args.random_scanner else \
        f"of {width}x{height} ({', '.join(families)})"
    print(f"{len(stats)} scans {what} in {args.out}")
    print(dataset.summarise(stats))
    return 0
