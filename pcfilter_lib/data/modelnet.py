"""ModelNet10 in its real layout ``<root>/<class>/{train,test}/*.off``: cached point clouds, splits,
augmentation, a ``keras.utils.PyDataset`` and a ``tf.data`` pipeline.

Parsing and sampling thousands of meshes takes minutes, so ``load_split`` does it once per split and
keeps the clouds in one ``.npz`` (with a manifest) in the data folder; later runs read that file in
a fraction of a second. The same code runs on the real data set and on the procedural stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from pcfilter_lib.data import procedural_modelnet
from pcfilter_lib.geometry.sampling import normalize_unit_sphere, sample_surface
from pcfilter_lib.io.files import atomic_write_with, prepare_folder, record_file, verify_folder
from pcfilter_lib.io.off import read_off

SPLITS = ("train", "test")
CACHE_GENERATOR = "pcfilter.modelnet_cache"
CACHE_VERSION = "1"


def list_classes(root: str | os.PathLike) -> list[str]:
    """The class names of a ModelNet folder.

    Args:
        root: a folder laid out as ``<root>/<class>/{train,test}/*.off``.

    Returns:
        The sorted names of its sub-folders; files (such as a README) and hidden folders are left out.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: it holds no class folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no ModelNet folder at {root}; generate one with `pcfilter modelnet --synthetic`")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} holds no class folders; expected <root>/<class>/{{train,test}}/*.off")
    return classes


def list_files(root: str | os.PathLike, split: str, limit_per_class: int | None = None
               ) -> tuple[list[Path], np.ndarray, list[str]]:
    """The mesh files of one split, sorted by class then name.

    Args:
        root: the ModelNet folder.
        split: "train" or "test".
        limit_per_class: keep only the first files of each class (for quick runs); None keeps all.

    Returns:
        ``(paths, labels, classes)``: N file paths, their (N,) int32 class indices and the class
        names.

    Raises:
        ValueError: the split is unknown or holds no mesh.
        FileNotFoundError: ``root`` is not a folder.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    classes = list_classes(root)
    paths, labels = [], []
    for label, name in enumerate(classes):
        # Names starting with a dot are temporary files of an interrupted write, never meshes.
        files = sorted(p for p in (root / name / split).glob("*.off") if not p.name.startswith("."))
        if limit_per_class is not None:
            files = files[:limit_per_class]
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"{root} has no {split} meshes (<class>/{split}/*.off)")
    return paths, np.asarray(labels, dtype=np.int32), classes


@dataclass(frozen=True)
class Clouds:
    """Labelled point clouds sampled from meshes.

    Attributes:
        points: (N, P, 3) float32, each cloud normalised to the unit sphere.
        labels: (N,) int32 class indices.
        classes: the class names.
        names: the source name of each cloud.
        normals: (N, P, 3) float32 unit normals, or None.
    """

    points: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    names: tuple[str, ...]
    normals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices) -> Clouds:
        """The clouds at ``indices`` (any integer sequence), with the same class names."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(self, points=self.points[indices], labels=self.labels[indices],
                       names=tuple(self.names[i] for i in indices),
                       normals=None if self.normals is None else self.normals[indices])

    def counts(self) -> dict[str, int]:
        """The number of clouds of each class, keyed by name."""
        return {name: int((self.labels == k).sum()) for k, name in enumerate(self.classes)}


def _sample_file(path: Path, num_points: int, seed, normals: bool):
    vertices, triangles = read_off(path)
    if normals:
        points, n = sample_surface(vertices, triangles, num_points, seed=seed, normals=True)
        return normalize_unit_sphere(points), n
    return normalize_unit_sphere(sample_surface(vertices, triangles, num_points, seed=seed)), None


def sample_files(paths, num_points: int = 1024, seed: int = 0, normals: bool = False, progress: bool = False):
    """Parse and sample every mesh, each normalised to the unit sphere.

    Args:
        paths: N OFF files.
        num_points: P, the points per cloud.
        seed: mesh i is sampled with the seed (seed, i), whatever the other files.
        normals: also return the normals of the sampled points.
        progress: show a progress bar.

    Returns:
        ``(points, normals)``: (N, P, 3) float32, and (N, P, 3) float32 or None.
    """
    iterator = paths
    if progress:

        iterator = tqdm(paths, desc="sampling meshes", unit="mesh")
    points = np.empty((len(paths), num_points, 3), dtype=np.float32)
    all_normals = np.empty_like(points) if normals else None
    for i, path in enumerate(iterator):
        points[i], n = _sample_file(path, num_points, np.random.SeedSequence([seed, i]), normals)
        if normals:
            all_normals[i] = n
    return points, all_normals


def _cache_folder(root: Path, parameters: dict, cache_dir: Path | None) -> Path:
    key = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]
    return (cache_dir or root.parent / "cache") / f"{root.name}-{key}"


def _fingerprint(paths: list[Path], root: Path) -> str:
    """Names and sizes of the source meshes: a change in the data set gives a new cache."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root).as_posix()} {path.stat().st_size}\n".encode())
    return digest.hexdigest()


def load_split(root: str | os.PathLike, split: str, num_points: int = 1024, seed: int = 0, normals: bool = False,
               limit_per_class: int | None = None, cache_dir: str | os.PathLike | None = None,
               progress: bool = False) -> Clouds:
    """One split as ``Clouds``, sampled once and then read from the cache.

    The cache is one ``<split>.npz`` per split in a folder named after the source data and the
    sampling parameters, with a manifest (generator, version, seed, parameters, sha256 per file).
    A changed data set or other parameters give another folder, so stale clouds are never reused.
    ``cache_dir`` holds those folders; by default it is ``cache`` beside ``root``.
    """
    root = Path(root).resolve()
    paths, labels, classes = list_files(root, split, limit_per_class)
    parameters = {"source": str(root), "split_files": _fingerprint(paths, root), "num_points": int(num_points),
                  "normals": bool(normals), "limit_per_class": limit_per_class, "classes": classes}
    folder = _cache_folder(root, {**parameters, "split": split, "seed": seed},
                           Path(cache_dir) if cache_dir else None)
    manifest = prepare_folder(folder, {"generator": CACHE_GENERATOR, "version": CACHE_VERSION, "seed": int(seed),
                                       "parameters": {**parameters, "split": split}})
    target = folder / f"{split}.npz"
    names = [p.relative_to(root).as_posix() for p in paths]
    if target.name not in manifest["files"] or verify_folder(folder, manifest):  # missing or changed: sample again
        points, all_normals = sample_files(paths, num_points, seed, normals, progress)
        arrays = {"points": points, "labels": labels, "names": np.asarray(names)}
        if normals:
            arrays["normals"] = all_normals
        atomic_write_with(target, lambda tmp: np.savez(tmp, **arrays))
        record_file(folder, manifest, target.name)
    with np.load(target) as data:
        return Clouds(points=data["points"], labels=data["labels"], classes=tuple(classes),
                      names=tuple(str(n) for n in data["names"]),
                      normals=data["normals"] if normals else None)


def split_validation(clouds: Clouds, fraction: float = 0.1, seed: int = 0) -> tuple[Clouds, Clouds]:
    """Carve a validation set out of a training set, per class, with a fixed seed.

    Use it on the training split only; the test split stays untouched until the final evaluation.

    Args:
        clouds: the training clouds.
        fraction: the share of each class held out (at least one cloud of a class with two or more).
        seed: the seed of the draw.

    Returns:
        ``(train, validation)``.

    Raises:
        ValueError: ``fraction`` is not strictly between 0 and 1.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for k in range(len(clouds.classes)):
        members = rng.permutation(np.flatnonzero(clouds.labels == k))
        n_val = int(round(fraction * len(members))) if len(members) > 1 else 0
        n_val = max(n_val, 1) if len(members) > 1 else 0
        held += list(members[:n_val])
        keep += list(members[n_val:])
    return clouds.take(np.sort(keep)), clouds.take(np.sort(held))


def take_fraction(clouds: Clouds, fraction: float, seed: int = 0) -> Clouds:
    """A class-stratified random subset, to train on less data.

    Args:
        clouds: the clouds.
        fraction: the share of each class to keep (at least one cloud per class).
        seed: the seed of the draw.

    Returns:
        The subset, in the original order.

    Raises:
        ValueError: ``fraction`` is not in (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    chosen = []
    for k in range(len(clouds.classes)):
        members = rng.permutation(np.flatnonzero(clouds.labels == k))
        if len(members):
            chosen += list(members[:max(1, int(round(fraction * len(members))))])
    return clouds.take(np.sort(chosen))


def select_classes(clouds: Clouds, classes) -> Clouds:
    """The clouds of some classes only, relabelled, as transfer learning needs them.

    Args:
        clouds: the clouds.
        classes: the class names to keep; their order gives the new labels 0..len(classes)-1.

    Returns:
        The subset with the new labels and class names.

    Raises:
        ValueError: a class is not in the data set.
    """
    classes = tuple(classes)
    missing = [c for c in classes if c not in clouds.classes]
    if missing:
        raise ValueError(f"classes {missing} are not in this data set ({', '.join(clouds.classes)})")
    old = np.array([clouds.classes.index(c) for c in classes])
    mask = np.isin(clouds.labels, old)
    subset = clouds.take(np.flatnonzero(mask))
    mapping = np.full(len(clouds.classes), -1, dtype=np.int32)
    mapping[old] = np.arange(len(classes), dtype=np.int32)
    return replace(subset, labels=mapping[subset.labels], classes=classes)


def augment(points: np.ndarray, rng: np.random.Generator, jitter: float = 0.01, clip: float = 0.05,
            scale: tuple[float, float] = (0.8, 1.25)) -> np.ndarray:
    """Augment a batch of clouds: a random rotation about the up (z) axis, a random scale per
    cloud, clipped Gaussian jitter per point and a random point order.

    Args:
        points: (B, P, 3) clouds.
        rng: the generator of the draws.
        jitter: the standard deviation of the jitter, in the clouds' units.
        clip: the largest jitter.
        scale: the range of the scale factors.

    Returns:
        (B, P, 3) float32 augmented clouds.
    """
    b, p, _ = points.shape
    angle = rng.uniform(0, 2 * np.pi, size=b)
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.zeros((b, 3, 3), dtype=np.float32)
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = c, -s, s, c
    rotation[:, 2, 2] = 1
    out = np.einsum("bpi,bji->bpj", points, rotation) * rng.uniform(*scale, size=(b, 1, 1))
    out += np.clip(rng.normal(0, jitter, size=out.shape), -clip, clip)
    order = np.argsort(rng.random((b, p)), axis=1)
    return np.take_along_axis(out, order[..., None], axis=1).astype(np.float32)


def thin_unevenly(points: np.ndarray, num_points: int, strength: float, seed: int = 0) -> np.ndarray:
    """Subsample every cloud so that its density falls off along a random direction.

    Point ``x`` of a cloud is kept with weight ``exp(strength * x . d)`` for a direction ``d``
    drawn per cloud, and ``num_points`` distinct points are drawn by those weights (the Gumbel
    top-k trick). For clouds in the unit sphere the density at one end of the cloud is about
    ``exp(2 * strength)`` times that at the other; ``strength=0`` draws a uniform subset. This is
    the uneven sampling of a real scanner (near surfaces dense, far ones sparse) that PointNet's
    single global max pool is said to handle badly and PointNet++'s local groups to handle well.

    Args:
        points: (N, Q, 3) clouds, normalised to the unit sphere.
        num_points: points kept per cloud, at most Q.
        strength: how steeply the density falls off, >= 0.
        seed: seed of the directions and the draws.

    Returns:
        (N, num_points, 3) float32, the kept points of each cloud in random order.

    Raises:
        ValueError: on a malformed array, a strength < 0 or more points asked for than there are.
    """
    points = np.asarray(points)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (clouds, points, 3), got shape {points.shape}")
    if not 0 < num_points <= points.shape[1]:
        raise ValueError(f"num_points must lie in [1, {points.shape[1]}] (the points per cloud), got {num_points}")
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a finite number >= 0, got {strength}")
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(len(points), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    keys = strength * np.einsum("nqi,ni->nq", points, direction) + rng.gumbel(size=points.shape[:2])
    kept = np.argpartition(-keys, num_points - 1, axis=1)[:, :num_points]
    return np.take_along_axis(points, kept[..., None], axis=1).astype(np.float32)


class PointCloudDataset(keras.utils.PyDataset):
    """Batches (points (B, P, 3), labels (B,)) from in-memory clouds, reshuffled every epoch.

    With ``augment`` each batch is rotated about the up axis, scaled, jittered and its points
    shuffled; ``num_points`` draws that many of the stored points per cloud. Seeded: the same
    seed gives the same batches in the same epochs.
    """

    def __init__(self, clouds: Clouds, batch_size: int = 32, shuffle: bool = True, augment: bool = False,
                 num_points: int | None = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if len(clouds) == 0:
            raise ValueError("the data set holds no clouds")
        self.clouds, self.batch_size, self.shuffle, self.augment = clouds, int(batch_size), shuffle, augment
        self.num_points = num_points or clouds.points.shape[1]
        if self.num_points > clouds.points.shape[1]:
            raise ValueError(f"num_points={self.num_points} exceeds the {clouds.points.shape[1]} points stored")
        self.seed, self.epoch = seed, 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.clouds))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.clouds))

    def __len__(self) -> int:
        return -(-len(self.clouds) // self.batch_size)

    def __getitem__(self, index: int):
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        points = self.clouds.points[chosen]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.num_points < points.shape[1]:
            keep = np.argsort(rng.random(points.shape[:2]), axis=1)[:, :self.num_points]
            points = np.take_along_axis(points, keep[..., None], axis=1)
        if self.augment:
            points = augment(points, rng)
        return points, self.clouds.labels[chosen]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._make_order()


class MeshFileDataset(keras.utils.PyDataset):
    """The uncached way: every batch parses its OFF files and samples them again (for comparison only)."""

    def __init__(self, paths, labels, batch_size: int = 32, num_points: int = 1024, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.paths, self.labels = list(paths), np.asarray(labels, dtype=np.int32)
        self.batch_size, self.num_points, self.seed = int(batch_size), num_points, seed

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int):
        chosen = range(index * self.batch_size, min((index + 1) * self.batch_size, len(self.paths)))
        points, _ = sample_files([self.paths[i] for i in chosen], self.num_points, seed=self.seed + index)
        return points, self.labels[list(chosen)]


def is_modelnet_folder(root: Path) -> bool:
    try:
        return any((root / c / "train").is_dir() for c in list_classes(root))
    except (FileNotFoundError, ValueError):
        return False


def ensure_dataset(data_dir: str | os.PathLike, size: str = "full", seed: int = 0,
                   progress: bool = False) -> tuple[Path, str]:
    """The ModelNet10 folder to use.

    Args:
        data_dir: the folder of generated and downloaded data (``pcfilter_lib.config.data_dir()``).
        size: ``"full"`` or ``"fast"``: the size of the procedural stand-in, if it is needed.
        seed: the procedural generator's seed.
        progress: show a progress bar while generating.

    Returns:
        (root, "real") if ``data_dir/ModelNet10`` holds the real data set, otherwise (root,
        "procedural") after generating (or resuming) the procedural stand-in in ``data_dir``.
    """
    if size not in procedural_modelnet.FOLDERS:
        raise ValueError(f"size must be one of {sorted(procedural_modelnet.FOLDERS)}, got {size!r}")
    real = Path(data_dir) / "ModelNet10"
    if is_modelnet_folder(real):
        return real, "real"
    counts = procedural_modelnet.FULL_COUNTS if size == "full" else procedural_modelnet.FAST_COUNTS
    root = Path(data_dir) / procedural_modelnet.FOLDERS[size]
    return procedural_modelnet.generate(root, seed=seed, counts=counts, progress=progress), "procedural"
