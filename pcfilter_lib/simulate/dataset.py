"""Datasets of simulated scans: train / val / test folders of ``.npz`` files with a manifest.

Scan ``i`` of a dataset with seed ``s`` draws everything from ``np.random.default_rng([s, i])``, so
it is the same file whether it is made in one run or in a resumed one, and the same seed and
parameters give byte-identical files.

Asked for (``semantic=True``), each scan also holds ``semantic`` (H, W) uint8, the semantic class of
the surface each pixel sees (``labels.SEMANTIC_NAMES``), beside the artefact ``label`` and ``kind``;
its ``meta`` then lists the class names. Without it, the files are exactly those of earlier versions.

``large_cloud`` lays simulated scans side by side into one unorganised cloud of any size, for the
filters that work in tiles (the benchmarks and chapter 6).
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.geometry.point_features import point_spacing
from pcfilter_lib.io.files import check_input_file, prepare_folder, read_manifest, record_file, verify_folder
from pcfilter_lib.io.off import read_off
from pcfilter_lib.io.scan import load_scan, save_scan
from pcfilter_lib.labels import ARTEFACT_KINDS, BASIC_KINDS, KIND_NAMES, LABEL_NAMES, SEMANTIC_NAMES
from pcfilter_lib.simulate.families import FAMILIES, draw_scanner, make_family_scene
from pcfilter_lib.simulate.measurement import label_tolerance, simulate_scan
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import read_part_file, semantic_image

GENERATOR = "pcfilter.simulate"
VERSION = "3"  # bump whenever the same seed and parameters would give different bytes
BINS_ONLY = {"bin": 1.0}
SPLITS = ("train", "val", "test")
NAME_DIGITS = 5  # scan_NNNNN.npz: the names sort in scan order
MAX_SCANS = 10 ** NAME_DIGITS  # more would need longer names, which would sort out of order


def make_scan(seed: int, index: int, config: ScannerConfig, n_parts=(3, 15), mesh_files=(), families=BINS_ONLY,
              randomise: bool = False, semantic: bool = False) -> dict:
    """Scene and scan number ``index`` of the dataset with ``seed``.

    Args:
        seed: the dataset's seed.
        index: the scan's number.
        config: the scanner (with ``randomise``, the base whose artefact switches and radiometry are kept).
        n_parts: (fewest, most) parts per bin.
        mesh_files: the user's part meshes, for bins.
        families: {scene family: share} (``families.FAMILIES``); each scan draws its family.
        randomise: draw the scanner per scan (``families.draw_scanner``).
        semantic: add the ``semantic`` image (the class per pixel) and the class names in ``meta``.

    Returns:
        The arrays of a scan file, the scene's triangles and a ``meta`` dict (generator, seed, family,
        scanner and scene parameters, codes).
    """
    rng = np.random.default_rng([seed, index])
    family = "bin" if dict(families) == BINS_ONLY else str(rng.choice(list(families), p=_shares(families)))
    scene = make_family_scene(family, rng, n_parts=n_parts, mesh_files=mesh_files)
    config = draw_scanner(family, rng, config) if randomise else config
    scan = simulate_scan(scene, config, rng)
    vertices, triangles, surface = scene.merged()
    scan.update(mesh_vertices=vertices, mesh_triangles=triangles, mesh_surface=surface)
    if semantic:
        scan["semantic"] = semantic_image(scan["surface"], scene.description)
    scan["meta"] = {
        "generator": GENERATOR, "version": VERSION, "seed": seed, "index": index, "family": family,
        "frame": "camera (OpenCV axes), metres; pose maps camera to world; mesh_vertices are in the world frame",
        "kinds": {str(code): name for code, name in KIND_NAMES.items()
                  if config.realism or code in BASIC_KINDS},
        "labels": {str(code): name for code, name in LABEL_NAMES.items()},
        "label_tolerance_m":
            f"{label_tolerance(0, config.noise_1m, config.label_floor):g} + 3 * {config.noise_1m:g} * z^2",
        "scanner": config.to_dict(),
        "scene": scene.description,
    }
    if semantic:
        scan["meta"]["semantic_classes"] = {str(code): name for code, name in enumerate(SEMANTIC_NAMES)}
    return scan


def large_cloud(points: int, config: ScannerConfig | None = None, seed: int = 0,
                first: np.ndarray | None = None) -> np.ndarray:
    """A cloud of ``points`` points made of simulated scans laid side by side on a grid.

    Scans 0 to 7 of seed 0 (``make_scan``) are used in turn; each copy is centred, turned about the
    vertical (z) by a random angle, moved to its place on the grid and jittered by a tenth of the point
    spacing, so that no two copies are the same points. The copies are added until the size is reached.

    Args:
        points: the cloud's size.
        config: the scanner of the scans (640x480 by default).
        seed: the seed of the angles and the jitter.
        first: (n, 3) points to use instead of scan 0 (its measured points), for instance a loaded scan.

    Returns:
        (points, 3) float64 coordinates in metres.
    """
    config = config or ScannerConfig(width=640, height=480)
    scans = [] if first is None else [np.asarray(first, np.float64)]
    for index in range(len(scans), 8):
        scan = make_scan(0, index, config)
        scans.append(np.asarray(scan["xyz"], np.float64)[np.asarray(scan["valid"], bool)])
    rng = np.random.default_rng(seed)
    spacing = point_spacing(scans[0])
    width = 1.2 * max(float(np.ptp(s[:, :2], axis=0).max()) for s in scans)
    copies = -(-points // min(len(s) for s in scans))
    side = int(np.ceil(np.sqrt(copies)))
    parts, total = [], 0
    for copy in range(copies):
        cloud = scans[copy % len(scans)]
        cloud = cloud - np.r_[np.median(cloud[:, :2], axis=0), 0]
        angle = rng.uniform(0, 2 * np.pi)
        turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        moved = cloud @ turn.T + [width * (copy % side), width * (copy // side), 0]
        parts.append(moved + rng.normal(scale=0.1 * spacing, size=moved.shape))
        total += len(moved)
        if total >= points:
            break
    return np.concatenate(parts)[:points]


def _shares(families) -> list[float]:
    total = sum(families.values())
    return [share / total for share in families.values()]


def split_sizes(n: int, split: tuple[float, float, float]) -> dict[str, int]:
    """Scans per split for ``n`` scans and fractions ``split`` (train, val, test) summing to 1.

    Raises:
        ValueError: ``n`` is not in 1..``MAX_SCANS``, or ``split`` is not three finite, non-negative
            fractions summing to 1.
    """
    if not 1 <= n <= MAX_SCANS:
        raise ValueError(f"the number of scans must lie in 1..{MAX_SCANS}, got {n} (scan files are numbered "
                         f"with {NAME_DIGITS} digits; make several datasets for more)")
    if len(split) != 3 or not np.isfinite(split).all() or min(split) < 0 or abs(sum(split) - 1) > 1e-6:
        raise ValueError(f"split must be three finite, non-negative fractions summing to 1 (train/val/test), "
                         f"got {'/'.join(map(str, split))}")
    val, test = round(n * split[1]), round(n * split[2])
    return {"train": n - val - test, "val": val, "test": test}


def scan_names(n: int, split=(0.8, 0.1, 0.1)) -> list[str]:
    """File names (relative to the dataset folder) of scans 0..n-1, numbered by scan: train first,
    then val, then test."""
    sizes = split_sizes(n, split)
    splits = [name for name in SPLITS for _ in range(sizes[name])]
    return [f"{name}/scan_{i:0{NAME_DIGITS}d}.npz" for i, name in enumerate(splits)]


def recipe(n: int, seed: int, config: ScannerConfig, split=(0.8, 0.1, 0.1), n_parts=(3, 15), mesh_files=(),
           families=BINS_ONLY, randomise: bool = False, semantic: bool = False) -> dict:
    """What decides the content of a dataset (compared with an existing folder's manifest). ``semantic``
    appears among the parameters only when asked for, so folders made without it keep their manifests."""
    meshes = [{"path": str(Path(p).resolve()), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
              for p in mesh_files]
    parameters = {"n": n, "split": list(split), "n_parts": list(n_parts), "mesh_files": meshes,
                  "scanner": config.to_dict(), "families": dict(families), "randomise": randomise}
    if semantic:
        parameters["semantic"] = True
    return {"generator": GENERATOR, "version": VERSION, "seed": seed, "parameters": parameters}


def split_files(folder: str | os.PathLike, split: str) -> list[Path]:
    """The scan files of one split of a dataset folder, as its manifest lists them.

    Only files the manifest records are returned, so a half-written dataset never mixes in.

    Args:
        folder: a dataset made by ``simulate.dataset.write_dataset`` (``pcfilter simulate``).
        split: "train", "val" or "test".

    Returns:
        The sorted paths of the split's ``.npz`` files.

    Raises:
        FileNotFoundError: the folder has no ``manifest.json``.
        ValueError: the split holds no finished scan.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder} has no manifest.json; make the dataset with 'pcfilter simulate' first")
    files = sorted(folder / name for name in manifest.get("files", {}) if name.startswith(f"{split}/"))
    if not files:
        raise ValueError(f"{folder} holds no finished scans in split {split!r}")
    return files


def scan_stats(label: np.ndarray, kind: np.ndarray) -> dict:
    """Valid points and artefact points per kind of one scan."""
    artefact = kind[label == 0]
    return {"valid": int((label != 255).sum()), "artefacts": int(artefact.size),
            "by_kind": {KIND_NAMES[code]: int((artefact == code).sum()) for code in ARTEFACT_KINDS}}


def check_request(n: int, split=(0.8, 0.1, 0.1), n_parts=(3, 15), mesh_files=(), families=BINS_ONLY) -> None:
    """Check a dataset request before anything is written.

    Raises:
        ValueError: ``n`` or ``split`` is out of range (``split_sizes``), ``n_parts`` is not a range
            0 <= low <= high, a family is unknown or the shares are not positive, or a mesh file
            holds no usable triangle mesh (``io.off.OffError`` for a damaged ``.off`` file, with its line).
        FileNotFoundError, IsADirectoryError, PermissionError: a mesh file cannot be read.
    """
    split_sizes(n, split)
    unknown = set(families) - set(FAMILIES)
    if unknown or not families or min(families.values()) < 0 or sum(families.values()) <= 0:
        raise ValueError(f"scene families must map some of {FAMILIES} to non-negative shares with a positive sum, "
                         f"got {dict(families)}")
    if not 0 <= n_parts[0] <= n_parts[1]:
        raise ValueError(f"parts per bin must be a range with 0 <= fewest <= most, got {n_parts[0]}..{n_parts[1]}")
    for path in mesh_files:
        path = check_input_file(path, "mesh file")
        try:
            read_part_file(path)
        except (MemoryError, RuntimeError) as error:  # Open3D's reader on a damaged file (std::bad_alloc)
            if path.suffix.lower() == ".off":
                read_off(path)  # the strict reader says which line is wrong
            raise ValueError(f"cannot read a triangle mesh from {path} ({error}); give a ply, obj, stl or off file "
                             "with faces") from error


def one_after_another(task: Callable[[int], object], items: Sequence[int],
                      done: Callable[[int], None] | None = None) -> Iterator:
    """``task(item)`` of each item, in order, in this process; ``done(item)`` after each (the runner of
    ``write_dataset`` by default; ``cli.cluster.TaskCells`` runs the items as tasks on a cluster)."""
    for item in items:
        result = task(item)
        if done:
            done(item)
        yield result


def in_processes(workers: int | None = None) -> Callable[..., Iterator]:
    """A runner for ``write_dataset`` that makes the scans in ``workers`` processes of this machine
    (default: one per CPU core), with results and ``done`` calls in the items' order; the files are the
    same bytes as ``one_after_another`` writes."""
    def run(task: Callable[[int], object], items: Sequence[int], done: Callable[[int], None] | None = None):
        count = max(1, min(workers or os.cpu_count() or 1, len(items)))
        if count == 1:
            yield from one_after_another(task, items, done)
            return
        with multiprocessing.get_context("spawn").Pool(count) as pool:
            for item, result in zip(items, pool.imap(task, items), strict=True):
                if done:
                    done(item)
                yield result
    return run


def write_dataset(out: str | os.PathLike, n: int, seed: int, config: ScannerConfig, split=(0.8, 0.1, 0.1),
                  n_parts=(3, 15), mesh_files=(), progress: bool | Mapping = True, families=BINS_ONLY,
                  randomise: bool = False, replace: bool = False, semantic: bool = False,
                  tasks: Callable[..., Iterator] = one_after_another) -> list[dict]:
    """Simulate ``n`` scans into ``out``/{train,val,test}/scan_NNNNN.npz with ``out``/manifest.json.

    Checks the request first (``check_request``), so that a refused one leaves no folder behind.
    Resumes a folder made with the same recipe: finished files whose sha256 matches the manifest
    are kept, missing or damaged ones are made again. Refuses a folder holding anything else, and
    writes each file atomically. With ``replace`` (folders the library manages), a folder of another
    version or recipe of this generator is made again instead (``io.files.prepare_folder``).
    ``families``, ``randomise`` and ``semantic`` are as in ``make_scan``. ``progress`` shows a bar, or is a mapping
    of tqdm settings for it (such as a ``delay`` before it first shows). Returns ``scan_stats`` per scan.

    Each scan to make is one call of a task of its index, run by ``tasks`` (``one_after_another``, or
    a cluster's runner: each scan a task that writes its file into ``out``, which every worker must
    see). The manifest records the files in the scans' order, whatever order the tasks finish in, so
    the scans and the manifest are the same bytes however they ran.
    """
    check_request(n, split, n_parts, mesh_files, families)
    out = Path(out)
    names = scan_names(n, split)
    manifest = prepare_folder(out, recipe(n, seed, config, split, n_parts, mesh_files, families, randomise, semantic),
                              replace)
    damaged = set(verify_folder(out, manifest))
    todo = [index for index, name in enumerate(names) if name not in manifest["files"] or name in damaged]
    to_make = set(todo)
    stats = []
    bar = dict(progress) if isinstance(progress, Mapping) else {"disable": not progress}
    with tqdm(total=len(names), desc="simulating scans", unit="scan", **bar) as shown:
        # Whole paths: a worker of a cluster may run in another folder.
        make = functools.partial(_make_file, out.resolve(), names, seed, config, n_parts,
                                 tuple(str(Path(mesh).resolve()) for mesh in mesh_files), families, randomise, semantic)
        made = tasks(make, todo, lambda _: shown.update(1))
        for index, name in enumerate(names):
            if index in to_make:
                stats.append(next(made))
                record_file(out, manifest, name)
            else:
                scan = load_scan(out / name, arrays=())
                stats.append(scan_stats(scan["label"], scan["kind"]))
                shown.update(1)
    return stats


def _make_file(out: Path, names: list[str], seed: int, config: ScannerConfig, n_parts, mesh_files, families,
               randomise: bool, semantic: bool, index: int) -> dict:
    """Make scan ``index`` of a dataset, write it (atomically) into ``out`` and return its ``scan_stats``."""
    scan = make_scan(seed, index, config, n_parts, mesh_files, families, randomise, semantic)
    path = out / names[index]
    try:
        save_scan(path, scan)
    except OSError as error:
        raise OSError(f"could not write {path}: {error.strerror or error}; no partial file was left, "
                      "free some space and run the same command again to resume") from error
    return scan_stats(scan["label"], scan["kind"])


def summarise(stats: list[dict]) -> str:
    """Lines describing the artefact fraction of valid points per scan and per kind: its minimum,
    10th percentile, median, 90th percentile and maximum over the scans."""
    valid = np.array([s["valid"] for s in stats], float)
    valid[valid == 0] = np.nan

    def line(name, counts):
        frac = np.asarray(counts) / valid * 100
        present = int((np.asarray(counts) > 0).sum())
        low, p10, mid, p90, high = np.nanpercentile(frac, [0, 10, 50, 90, 100])
        return (f"  {name:<16} min {low:6.2f}%  10% {p10:6.2f}%  median {mid:6.2f}%  90% {p90:6.2f}%  "
                f"max {high:6.2f}%  (in {present} of {len(stats)} scans)")

    lines = [f"artefact fraction of valid points over {len(stats)} scans:",
             line("all artefacts", [s["artefacts"] for s in stats])]
    lines += [line(KIND_NAMES[code], [s["by_kind"][KIND_NAMES[code]] for s in stats]) for code in ARTEFACT_KINDS]
    return "\n".join(lines)
