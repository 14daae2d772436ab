"""Voxel grids of scanned scenes with a semantic class per voxel: the data of 3D semantic segmentation.

Each example is one bin of parts (``simulate.scene.make_scene``) scanned from one or several
viewpoints (``simulate.measurement.simulate_view``: the first looks straight down, the others lean by
``tilt`` degrees at azimuths spread around the bin), then fused into a cubic grid that holds the bin
(side ``GRID_SIDE`` metres, ``resolution`` voxels per side, the bin floor a few voxels above the bottom):

* ``tsdf`` (R, R, R) float16: the truncated signed distance fused from the measured depths
  (``geometry.depth_fusion.fuse_tsdf``), in truncation units within [-1, 1], negative behind the surface,
  0 where no view observed the voxel;
* ``state`` (R, R, R) uint8: the ternary grid carved from the views (``geometry.depth_fusion.carve``):
  ``FREE`` where a camera ray passed through, ``OCCUPIED`` where a measured point fell, ``UNKNOWN``
  elsewhere (behind surfaces, outside every view);
* ``labels`` (R, R, R) uint8: the semantic class (``labels.SEMANTIC_NAMES``) of the true surface that
  passes through each voxel, from the scene's triangles (a part over the bin over the table where
  several share a voxel), ``SEMANTIC_BACKGROUND`` where none does;
* ``instance`` (R, R, R) uint8: the surface id there (0 table, 1 bin, 2.. parts; 255 none);
* ``origin`` (3,) and ``voxel_size`` () float64: the grid in the scene's world frame (metres);
* ``poses`` (V, 4, 4) float32: each view's camera-to-world pose;
* the views themselves, for networks that read images or points (``load_scene_views``):
  ``view_depth`` (V, H, W) float32, the measured depth along each camera's z axis (NaN where the
  scanner measured nothing; ``geometry.depth_fusion.View.from_depth`` turns it back into points),
  ``view_intensity`` (V, H, W) float16, the intensity image, ``view_semantic`` (V, H, W) uint8, the
  class of the surface each pixel sees (``simulate.semantic_image``; known also where no point was
  measured), and ``view_intrinsics`` (V, 3, 3) float32;
* ``meta``: JSON with the generator, seed, index, scanner, views and the scene description.

The scans carry the simulator's artefacts, so the grids hold false surface where the scanner erred,
as real fused scans do. Files go to ``<out>/{train,val,test}/scene_NNNNN.npz`` with a ``manifest.json``;
scene ``i`` draws its scene from ``default_rng([seed, i])`` and view ``k`` from
``default_rng([seed, i, k])``, so a seed gives the same bytes whether the set is made in one run or
resumed, and the first views of a scene are the same whatever the number of views.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pcfilter_lib.geometry.depth_fusion import FREE, OCCUPIED, UNKNOWN, View, carve, fuse_tsdf
from pcfilter_lib.geometry.voxel_grids import Grid, voxelize_mesh
from pcfilter_lib.io.files import atomic_write_bytes, prepare_folder, read_manifest, record_file, verify_folder
from pcfilter_lib.io.scan import scan_bytes
from pcfilter_lib.labels import SEMANTIC_BACKGROUND, SEMANTIC_NAMES, SEMANTIC_SUPPORT
from pcfilter_lib.simulate.dataset import split_sizes
from pcfilter_lib.simulate.measurement import simulate_view, viewpoint
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import BIN_WALL, NO_SURFACE, Scene, make_scene, semantic_image

GENERATOR = "pcfilter.scene_voxels"
VERSION = "2"  # bump whenever the same seed and parameters would give different bytes
SPLITS = ("train", "val", "test")
GRID_SIDE = 0.56  # metres: the bin (0.53 x 0.39 m outside) with a margin of table around it
FLOOR_VOXELS = 3  # voxels between the grid's bottom and the bin floor's underside
TILT = 30.0  # degrees from the vertical of every view after the first
NAME_DIGITS = 5
MAX_SCENES = 10 ** NAME_DIGITS


def scene_grid(resolution: int) -> Grid:
    """The cubic grid every scene is fused into: ``GRID_SIDE`` metres centred over the bin, its
    bottom ``FLOOR_VOXELS`` voxels below the bin floor's underside.

    Raises:
        ValueError: ``resolution`` is below 8 voxels.
    """
    if int(resolution) < 8:
        raise ValueError(f"a scene grid needs at least 8 voxels per side, got {resolution}")
    voxel = GRID_SIDE / int(resolution)
    origin = (-GRID_SIDE / 2, -GRID_SIDE / 2, -BIN_WALL - FLOOR_VOXELS * voxel)
    return Grid(origin, voxel, (int(resolution),) * 3)


def view_motions(n_views: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The scanner's motions (``simulate.measurement.viewpoint``) for ``n_views`` views of one scene: the
    first straight down, the others tilted by ``TILT`` degrees at evenly spread azimuths, turned
    together by one random angle."""
    turn = float(rng.uniform(0.0, 360.0))
    others = n_views - 1
    return [viewpoint()] + [viewpoint(turn + 360.0 * k / others, TILT) for k in range(others)]


def label_grid(scene: Scene, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Semantic classes and surface ids of the voxels the scene's true surfaces pass through.

    Args:
        scene: the scene (its meshes in the world frame; surface id = index).
        grid: the ``Grid``.

    Returns:
        ``(labels, instance)``: (X, Y, Z) uint8 class codes (``SEMANTIC_BACKGROUND`` where no surface)
        and surface ids (``NO_SURFACE`` where none); later surfaces (parts) win where several meet.
    """
    classes = scene.surface_classes()
    labels = np.full(grid.shape, SEMANTIC_BACKGROUND, np.uint8)
    instance = np.full(grid.shape, NO_SURFACE, np.uint8)
    for sid, (vertices, triangles) in enumerate(scene.meshes):
        touched = voxelize_mesh(vertices, triangles, grid)
        labels[touched] = classes[sid]
        instance[touched] = sid
    return labels, instance


def make_scene_grid(seed: int, index: int, config: ScannerConfig, resolution: int = 64, n_views: int = 3,
                    n_parts=(3, 15), truncation: float = 3.0) -> dict:
    """Scene ``index`` of the set with ``seed``, scanned and fused (see the module docstring).

    Args:
        seed: the set's seed.
        index: the scene's number.
        config: the scanner (image size, artefacts...).
        resolution: voxels per side of the grid.
        n_views: views fused, at least 1.
        n_parts: (fewest, most) parts per bin.
        truncation: the TSDF's truncation distance, voxels.

    Returns:
        The arrays of a scene file and its ``meta`` dict.

    Raises:
        ValueError: ``n_views`` < 1 or the resolution is below 8.
    """
    if int(n_views) < 1:
        raise ValueError(f"a scene needs at least one view, got n_views={n_views}")
    grid = scene_grid(resolution)
    rng = np.random.default_rng([seed, index])
    scene = make_scene(rng, n_parts=n_parts)
    motions = view_motions(int(n_views), rng)
    views, poses, images = [], [], {"depth": [], "intensity": [], "semantic": [], "intrinsics": []}
    for k, motion in enumerate(motions):
        scan = simulate_view(scene, config, np.random.default_rng([seed, index, k]), motion)
        views.append(View(scan["xyz"], scan["intrinsics"].astype(np.float64), scan["pose"].astype(np.float64)))
        poses.append(scan["pose"])
        images["depth"].append(np.where(scan["valid"], scan["xyz"][..., 2], np.nan).astype(np.float32))
        images["intensity"].append(scan["intensity"].astype(np.float16))
        images["semantic"].append(semantic_image(scan["surface"], scene.description))
        images["intrinsics"].append(scan["intrinsics"].astype(np.float32))
    tsdf, weight = fuse_tsdf(views, grid, truncation)
    state = carve(views, grid)
    labels, instance = label_grid(scene, grid)
    meta = {"generator": GENERATOR, "version": VERSION, "seed": int(seed), "index": int(index),
            "resolution": int(resolution), "truncation_voxels": float(truncation),
            "view_motions": [m.tolist() for m in motions],
            "state_codes": {"free": FREE, "occupied": OCCUPIED, "unknown": UNKNOWN},
            "semantic_classes": {str(code): name for code, name in enumerate(SEMANTIC_NAMES)},
            "scanner": config.to_dict(), "scene": scene.description}
    return {"tsdf": np.where(weight > 0, tsdf, 0.0).astype(np.float16), "state": state, "labels": labels,
            "instance": instance, "origin": np.asarray(grid.origin, np.float64),
            "voxel_size": np.float64(grid.voxel_size), "poses": np.stack(poses).astype(np.float32),
            **{f"view_{key}": np.stack(values) for key, values in images.items()}, "meta": meta}


def scene_names(n: int, split=(0.8, 0.1, 0.1)) -> list[str]:
    """File names of scenes 0..n-1, train first, then val, then test."""
    if not 1 <= n <= MAX_SCENES:
        raise ValueError(f"the number of scenes must lie in 1..{MAX_SCENES}, got {n}")
    sizes = split_sizes(n, split)
    splits = [name for name in SPLITS for _ in range(sizes[name])]
    return [f"{name}/scene_{i:0{NAME_DIGITS}d}.npz" for i, name in enumerate(splits)]


def recipe(n: int, seed: int, config: ScannerConfig, resolution: int = 64, n_views: int = 3, split=(0.8, 0.1, 0.1),
           n_parts=(3, 15), truncation: float = 3.0) -> dict:
    """What decides the content of a scene set (compared with an existing folder's manifest)."""
    return {"generator": GENERATOR, "version": VERSION, "seed": int(seed),
            "parameters": {"n": int(n), "split": list(split), "resolution": int(resolution), "n_views": int(n_views),
                           "n_parts": list(n_parts), "truncation": float(truncation), "scanner": config.to_dict()}}


def write_scene_grids(out: str | os.PathLike, n: int, seed: int, config: ScannerConfig, resolution: int = 64,
                      n_views: int = 3, split=(0.8, 0.1, 0.1), n_parts=(3, 15), truncation: float = 3.0,
                      progress: bool | Mapping = False, replace: bool = False, splits=SPLITS) -> Path:
    """Make ``n`` scene grids in ``out`` (see the module docstring) and return ``out``.

    Resumes a folder made with the same recipe: finished files whose sha256 matches the manifest are
    kept, missing or damaged ones are made again; each file is written atomically. A folder holding
    anything else is refused (with ``replace``, another recipe of this generator is made again).

    Args:
        out: the folder.
        n: scenes, 1..``MAX_SCENES``.
        seed: the seed.
        config: the scanner.
        resolution: voxels per side (64; 32 for quick runs).
        n_views: views per scene.
        split: fractions (train, val, test).
        n_parts: (fewest, most) parts per bin.
        truncation: TSDF truncation, voxels.
        progress: show a bar, or a mapping of tqdm settings.
        replace: make a folder of another recipe of this generator again.
        splits: make only the scenes of these splits (e.g. the test scenes, where every network is
            shipped); a later call with the others adds them to the same folder.

    Raises:
        ValueError: a bad count, split, view count, part range or resolution, an unknown split name, or
            a folder holding other data.
    """
    names = scene_names(n, split)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; choose among {SPLITS}")
    if int(n_views) < 1 or int(resolution) < 8 or truncation <= 0:
        raise ValueError(f"need n_views >= 1, resolution >= 8 and truncation > 0, got {n_views}, {resolution}, "
                         f"{truncation}")
    if not 0 <= n_parts[0] <= n_parts[1]:
        raise ValueError(f"parts per bin must be a range with 0 <= fewest <= most, got {n_parts[0]}..{n_parts[1]}")
    out = Path(out)
    manifest = prepare_folder(out, recipe(n, seed, config, resolution, n_views, split, n_parts, truncation), replace)
    damaged = set(verify_folder(out, manifest))
    bar = dict(progress) if isinstance(progress, Mapping) else {"disable": not progress}
    wanted = [(index, name) for index, name in enumerate(names) if name.split("/")[0] in splits]
    for index, name in tqdm(wanted, desc="scanning and fusing scenes", unit="scene", **bar):
        if name in manifest["files"] and name not in damaged:
            continue
        example = make_scene_grid(seed, index, config, resolution, n_views, n_parts, truncation)
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, scan_bytes(example))
        record_file(out, manifest, name)
    return out


def _split_files(folder: str | os.PathLike, split: str, verify: bool) -> list[Path]:
    """The files of one split of a scene set, checked against its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("generator") != GENERATOR:
        raise ValueError(f"{folder} holds no scene grids (no {GENERATOR} manifest); make them with write_scene_grids")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    parameters = manifest["parameters"]
    names = [name for name in scene_names(parameters["n"], parameters["split"]) if name.startswith(f"{split}/")]
    if not names:
        raise ValueError(f"{folder}: split {split!r} holds no scenes (the set was made with train/val/test shares "
                         f"{parameters['split']}); choose another split or make a set with scenes in this one")
    missing = [name for name in names if name not in manifest["files"]]
    if missing:
        raise ValueError(f"{folder}: split {split!r} holds {len(names) - len(missing)} of its {len(names)} scenes; "
                         "run write_scene_grids again with the same arguments to finish it")
    if verify:
        changed = [name for name in verify_folder(folder, manifest) if name in names]
        if changed:
            raise ValueError(f"{folder}/{changed[0]} does not match its manifest checksum; run write_scene_grids "
                             "again to make it anew")
    return [folder / name for name in names]


def _stack(files: list[Path], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {key: [] for key in keys}
    for path in files:
        with np.load(path, allow_pickle=False) as archive:
            for key in keys:
                parts[key].append(archive[key])
    return {key: np.stack(values) for key, values in parts.items()}


def load_scene_grids(folder: str | os.PathLike, split: str, verify: bool = True) -> dict[str, np.ndarray]:
    """One split of a folder written by ``write_scene_grids``, stacked.

    Returns:
        ``tsdf`` (N, R, R, R) float32, ``state``, ``labels`` and ``instance`` (N, R, R, R) uint8.

    Raises:
        ValueError: the folder holds no scene set, the split is unknown, empty or incomplete, or (with
            ``verify``) a file differs from its manifest checksum.
    """
    stacked = _stack(_split_files(folder, split, verify), ("tsdf", "state", "labels", "instance"))
    stacked["tsdf"] = stacked["tsdf"].astype(np.float32)
    return stacked


def load_scene_views(folder: str | os.PathLike, split: str, verify: bool = True) -> dict[str, np.ndarray]:
    """The views of one split's scenes, stacked, in the order of ``load_scene_grids``.

    Returns:
        ``depth`` (N, V, H, W) float32 (NaN: no point), ``intensity`` (N, V, H, W) float32, ``semantic``
        (N, V, H, W) uint8, ``intrinsics`` (N, V, 3, 3), ``poses`` (N, V, 4, 4), ``origin`` (N, 3),
        ``voxel_size`` (N,) and ``resolution`` (N,).

    Raises:
        ValueError: as ``load_scene_grids``.
    """
    keys = ("view_depth", "view_intensity", "view_semantic", "view_intrinsics", "poses", "origin", "voxel_size")
    stacked = _stack(_split_files(folder, split, verify), keys)
    views = {key.removeprefix("view_"): value for key, value in stacked.items()}
    views["intensity"] = views["intensity"].astype(np.float32)
    views["resolution"] = np.rint(GRID_SIDE / views["voxel_size"]).astype(np.int64)  # scene_grid's cube
    return views


def first_views(views: Mapping[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """``load_scene_views``'s arrays with only the first ``count`` views of every scene."""
    total = views["depth"].shape[1]
    if not 1 <= count <= total:
        raise ValueError(f"the scenes have {total} views; choose 1 to {total}, got {count}")
    per_view = ("depth", "intensity", "semantic", "intrinsics", "poses")
    return {key: value[:, :count] if key in per_view else value for key, value in views.items()}


def scene_view(views: Mapping[str, np.ndarray], scene: int, view: int) -> View:
    """View ``view`` of scene ``scene`` of ``load_scene_views``'s arrays, as a ``geometry.depth_fusion.View``."""
    return View.from_depth(views["depth"][scene, view], views["intrinsics"][scene, view], views["poses"][scene, view])


def scene_grid_of(views: Mapping[str, np.ndarray], scene: int) -> Grid:
    """The ``Grid`` that scene ``scene`` of ``load_scene_views``'s arrays was fused into."""
    side = int(views["resolution"][scene])
    return Grid(tuple(views["origin"][scene]), float(views["voxel_size"][scene]), (side, side, side))


# Network inputs and chunks ----------------------------------------------------------------------------

FEATURES = 3  # channels of a voxel: the TSDF, free, occupied (unknown: both flags 0)


def scene_features(tsdf: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The network input of grids: (..., X, Y, Z) TSDF and ternary state -> (..., X, Y, Z, 3) float32
    channels (TSDF, free, occupied). An unknown voxel, and the padding outside a grid, is all zeros."""
    tsdf, state = np.asarray(tsdf, np.float32), np.asarray(state)
    if tsdf.shape != state.shape:
        raise ValueError(f"tsdf {tsdf.shape} and state {state.shape} must have the same shape")
    return np.stack([tsdf, state == FREE, state == OCCUPIED], axis=-1).astype(np.float32)


def _check_grids(features: np.ndarray, labels: np.ndarray) -> None:
    if features.ndim != 5 or labels.shape != features.shape[:4]:
        raise ValueError(f"need features (N, X, Y, Z, C) and labels (N, X, Y, Z), got {features.shape} and "
                         f"{labels.shape}")


def random_chunks(features: np.ndarray, labels: np.ndarray, size: int, count: int, rng: np.random.Generator,
                  part_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Random cubic chunks of scenes, to train a fully convolutional network that then runs on whole scenes.

    Args:
        features: (N, X, Y, Z, C) scene inputs (``scene_features``).
        labels: (N, X, Y, Z) class codes.
        size: S, the chunk's side, at most the grid's smallest side.
        count: chunks to cut.
        rng: where the scenes and corners are drawn from.
        part_share: share of chunks centred on a voxel of a part (a class above the support), so that
            chunks of empty air, table and bin do not drown the parts.

    Returns:
        ``(x, y)``: (count, S, S, S, C) float32 and (count, S, S, S) uint8.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    _check_grids(features, labels)
    shape = np.array(features.shape[1:4])
    if not 1 <= size <= shape.min() or count < 1:
        raise ValueError(f"chunks need 1 <= size <= {shape.min()} and count >= 1, got size {size}, count {count}")
    x = np.empty((count, size, size, size, features.shape[-1]), np.float32)
    y = np.empty((count, size, size, size), np.uint8)
    parts_of = [np.argwhere(labels[n] > SEMANTIC_SUPPORT) for n in range(len(labels))]
    for c in range(count):
        n = int(rng.integers(len(features)))
        parts = parts_of[n] if rng.random() < part_share else ()
        centre = parts[rng.integers(len(parts))] if len(parts) else rng.integers(0, shape)
        lo = np.clip(centre - size // 2, 0, shape - size)
        window = (n, *(slice(a, a + size) for a in lo))
        x[c], y[c] = features[window], labels[window]
    return x, y


def column_chunk(features: np.ndarray, x: int, y: int, context: int) -> np.ndarray:
    """The context around one column of one scene: (X, Y, Z, C) -> (context, context, Z, C), centred on
    column (x, y) and padded with zeros (unknown) beyond the grid. ``context`` is odd."""
    half = context // 2
    padded = np.pad(features, ((half, half), (half, half), (0, 0), (0, 0)))
    return padded[x:x + context, y:y + context]


def column_windows(features: np.ndarray, context: int) -> np.ndarray:
    """Every column's context of one scene, for the sliding-window network: (X, Y, Z, C) ->
    (X, Y, context, context, Z, C), the context of column (x, y) at [x, y]. A view into one padded copy
    (zeros, i.e. unknown, beyond the grid), so no window is copied until it is read.

    Raises:
        ValueError: ``context`` is not a positive odd number, or features are not (X, Y, Z, C).
    """
    if context < 1 or context % 2 == 0:
        raise ValueError(f"the context of a column must be a positive odd number of voxels, got {context}")
    if np.ndim(features) != 4:
        raise ValueError(f"features of one scene are (X, Y, Z, C), got shape {np.shape(features)}")
    half = context // 2
    padded = np.pad(features, ((half, half), (half, half), (0, 0), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (context, context), axis=(0, 1))
    return windows.transpose(0, 1, 4, 5, 2, 3)  # (X, Y, Z, C, cx, cy) -> (X, Y, cx, cy, Z, C)


def random_columns(features: np.ndarray, labels: np.ndarray, context: int, count: int, rng: np.random.Generator,
                   part_share: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Random column chunks: each the context around one column and the labels of that column.

    Args:
        features: (N, X, Y, Z, C) scene inputs.
        labels: (N, X, Y, Z) class codes.
        context: odd side of the chunk across the column, voxels.
        count: chunks.
        rng: the draws.
        part_share: share of columns chosen among those holding a part (class above the support).

    Returns:
        ``(x, y)``: (count, context, context, Z, C) float32 and (count, Z) uint8.
    """
    features, labels = np.asarray(features), np.asarray(labels)
    _check_grids(features, labels)
    if context < 1 or context % 2 == 0 or count < 1:
        raise ValueError(f"need an odd context >= 1 and count >= 1, got {context} and {count}")
    _, nx, ny, nz, channels = features.shape
    x = np.empty((count, context, context, nz, channels), np.float32)
    y = np.empty((count, nz), np.uint8)
    with_parts = [np.argwhere((labels[n] > SEMANTIC_SUPPORT).any(axis=-1)) for n in range(len(labels))]
    for c in range(count):
        n = int(rng.integers(len(features)))
        if rng.random() < part_share and len(with_parts[n]):
            i, j = with_parts[n][rng.integers(len(with_parts[n]))]
        else:
            i, j = rng.integers(nx), rng.integers(ny)
        x[c] = column_chunk(features[n], int(i), int(j), context)
        y[c] = labels[n, i, j]
    return x, y


def coarsen(tsdf: np.ndarray, state: np.ndarray, labels: np.ndarray, factor: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same scenes at a lower resolution: cubes of ``factor`` voxels a side become one voxel.

    The TSDF is averaged over the block, the state is ``OCCUPIED`` if any voxel of the block is, else
    ``FREE`` if any is, else unknown, and the label is the most frequent surface class of the block
    (background only where the block holds no surface), so thin parts survive as long as they fit a voxel.

    Args:
        tsdf: (..., X, Y, Z) TSDF grids.
        state: (..., X, Y, Z) ternary states.
        labels: (..., X, Y, Z) class codes.
        factor: the block's side; X, Y and Z must be multiples of it.

    Returns:
        ``(tsdf, state, labels)`` of shape (..., X / factor, Y / factor, Z / factor).

    Raises:
        ValueError: the shapes differ or are not multiples of ``factor``.
    """
    tsdf, state, labels = np.asarray(tsdf, np.float32), np.asarray(state), np.asarray(labels)
    if not tsdf.shape == state.shape == labels.shape or tsdf.ndim < 3:
        raise ValueError(f"tsdf, state and labels must be grids of one shape, got {tsdf.shape}, {state.shape}, "
                         f"{labels.shape}")
    if factor < 1 or any(n % factor for n in tsdf.shape[-3:]):
        raise ValueError(f"the grid's sides {tsdf.shape[-3:]} must be multiples of the factor {factor}")
    lead = tsdf.shape[:-3]
    x, y, z = (n // factor for n in tsdf.shape[-3:])

    def blocks(a):
        a = a.reshape(*lead, x, factor, y, factor, z, factor)
        a = np.moveaxis(a, (-5, -3, -1), (-3, -2, -1))
        return a.reshape(*lead, x, y, z, factor ** 3)

    coarse_tsdf = blocks(tsdf).mean(-1)
    s = blocks(state)
    coarse_state = np.where((s == OCCUPIED).any(-1), OCCUPIED, np.where((s == FREE).any(-1), FREE, UNKNOWN))
    b = blocks(labels).astype(np.int64)
    counts = np.stack([(b == c).sum(-1) for c in range(len(SEMANTIC_NAMES))], axis=-1)
    counts[..., SEMANTIC_BACKGROUND] = 0
    coarse_labels = np.where(counts.max(-1) > 0, counts.argmax(-1), SEMANTIC_BACKGROUND).astype(np.uint8)
    return coarse_tsdf.astype(np.float32), coarse_state.astype(np.uint8), coarse_labels
