"""Single images paired with occupancy grids: the data of the image-to-voxels (YOVO) chapter.

Each example is one procedural ModelNet10 shape (``procedural_modelnet.make_shape``) seen once:

* an RGB image (S, S, 3) uint8, ray cast with Open3D from a random viewpoint (azimuth, elevation,
  distance), shaded with a random object colour and a random light (ambient plus Lambert diffuse),
  in front of a random two-colour gradient background; rendered at ``supersample`` times the size
  and averaged down, so edges are anti-aliased;
* the shape's solid occupancy grid (G, G, G) bool, indexed [x, y, z] in the shape's own frame (z up)
  and centred on its bounding box, like the binary voxel grids of ShapeNet that the YOVO thesis
  used (a single-view network has to infer the canonical pose from the picture);
* its class and viewpoint.

Examples are written in shards of ``shard_size`` to ``<out>/{train,val,test}/shard_NNNN.npz`` with a
``manifest.json`` (generator, version, seed, parameters, sha256 per shard). Example ``i`` of split
``s`` draws its shape and its view from ``SeedSequence([seed, s, i])``, so a seed gives the same
bytes whether the set is made in one run or resumed; classes take turns (example i is of class
i mod 10). ``ImageVoxelSequence`` serves a split to Keras.
"""

from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import open3d as o3d
from tqdm.auto import tqdm

from pcfilter_lib.data.procedural_modelnet import CLASSES, fan_triangles, make_shape
from pcfilter_lib.geometry.point_checks import check_mesh
from pcfilter_lib.geometry.voxel_grids import grid_around, voxelize_mesh
from pcfilter_lib.io.files import atomic_write_bytes, prepare_folder, read_manifest, record_file, sha256, verify_folder
from pcfilter_lib.io.scan import scan_bytes

GENERATOR = "pcfilter.image_voxels"
VERSION = "1"  # bump whenever the same seed and parameters would give different bytes
SPLITS = ("train", "val", "test")
ELEVATION = (5.0, 55.0)  # degrees above the horizon the camera may stand
DISTANCE = (2.2, 3.2)  # camera distance, in radii of the shape's bounding sphere


def render_image(vertices, triangles, rng: np.random.Generator, size: int = 64, supersample: int = 2
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A shaded colour image of a mesh from a random viewpoint.

    The mesh is centred on its bounding box and scaled into the unit sphere. The camera stands at a
    random azimuth, an elevation in ``ELEVATION`` and a distance in ``DISTANCE`` (radii), looking
    at the centre with z up; its field of view fits the sphere at the nearest distance, so farther
    shapes look smaller. Triangles are lit from both sides.

    Args:
        vertices: (V, 3) mesh vertices.
        triangles: (T, 3) vertex indices.
        rng: the source of every random choice (view, colours, light, background).
        size: image side S, pixels.
        supersample: rays per pixel along each axis (averaged).

    Returns:
        The image (S, S, 3) uint8 and the view (3,) float32: azimuth and elevation (degrees) and
        distance (radii).
    """
    vertices, triangles = check_mesh(vertices, triangles)
    if size < 8 or supersample < 1:
        raise ValueError(f"image size must be at least 8 and supersample at least 1, got {size} and {supersample}")
    centre = (vertices.min(0) + vertices.max(0)) / 2
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    if radius <= 0:
        raise ValueError("the mesh vertices all coincide")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(((vertices - centre) / radius).astype(np.float32)),
                        o3d.core.Tensor(triangles.astype(np.uint32)))

    azimuth, elevation = rng.uniform(0.0, 360.0), rng.uniform(*ELEVATION)
    distance = rng.uniform(*DISTANCE)
    a, e = np.radians(azimuth), np.radians(elevation)
    eye = distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    fov = 2 * np.degrees(np.arcsin(1 / DISTANCE[0])) * 1.05
    n = size * supersample
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        fov, o3d.core.Tensor([0.0, 0.0, 0.0]), o3d.core.Tensor(eye.astype(np.float32)),
        o3d.core.Tensor([0.0, 0.0, 1.0]), n, n)
    hits = scene.cast_rays(rays)
    hit = np.isfinite(hits["t_hit"].numpy())
    directions = rays.numpy()[..., 3:]
    normals = hits["primitive_normals"].numpy()
    normals = np.where((np.sum(normals * directions, -1) > 0)[..., None], -normals, normals)  # face the camera

    albedo = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.5, 1.0)))
    light_a, light_e = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(20.0, 80.0))
    light = np.array([np.cos(light_e) * np.cos(light_a), np.cos(light_e) * np.sin(light_a), np.sin(light_e)])
    ambient, diffuse = rng.uniform(0.15, 0.4), rng.uniform(0.5, 0.85)
    lambert = np.clip(normals @ light, 0.0, None)[..., None]
    shaded = np.clip(albedo * (ambient + diffuse * lambert), 0.0, 1.0)
    top, bottom = rng.random(3), rng.random(3)
    ramp = np.linspace(1.0, 0.0, n)[:, None, None]  # rows are flipped below: top colour at the top
    background = np.broadcast_to(top + (bottom - top) * ramp, (n, n, 3))
    # Open3D's pinhole rays run from the image's bottom right; turn the picture upright (z up).
    image = np.where(hit[..., None], shaded, background)[::-1, ::-1]
    image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    view = np.array([azimuth, elevation, distance], dtype=np.float32)
    return np.round(image * 255).astype(np.uint8), view


def make_example(seed: int, split: str, index: int, classes=CLASSES, image_size: int = 64, grid: int = 32,
                 supersample: int = 2) -> dict:
    """Example ``index`` of ``split`` for ``seed``: image (S, S, 3) uint8, voxels (G, G, G) bool,
    label (index into ``classes``) and view (azimuth, elevation, distance)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    shape_seed, view_seed = np.random.SeedSequence([seed, SPLITS.index(split), index]).spawn(2)
    label = index % len(classes)
    vertices, faces = make_shape(classes[label], shape_seed)
    triangles = fan_triangles(faces)
    voxels = voxelize_mesh(vertices, triangles, grid_around(vertices, grid), solid=True)
    image, view = render_image(vertices, triangles, np.random.default_rng(view_seed), image_size, supersample)
    return {"image": image, "voxels": voxels, "label": label, "view": view}


def _shards(n: int, shard_size: int) -> list[range]:
    return [range(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def write_dataset(out: str | os.PathLike, counts: dict[str, int], seed: int = 0, classes=CLASSES,
                  image_size: int = 64, grid: int = 32, supersample: int = 2, shard_size: int = 100,
                  progress: bool = False) -> Path:
    """Generate images and grids into ``out`` (see the module docstring) and return ``out``.

    Args:
        out: the dataset folder (created if needed).
        counts: examples per split, e.g. ``{"train": 2000, "val": 250, "test": 500}``.
        seed: the seed every example is drawn from.
        classes: procedural ModelNet10 class names; example i is of class i mod len(classes).
        image_size: image side, pixels.
        grid: occupancy grid side, voxels.
        supersample: rays per pixel along each axis.
        shard_size: examples per file.
        progress: show a progress bar.

    Raises:
        ValueError: for an unknown split or class, a negative count, or a folder that holds other
            data (delete it or choose another one).
    """

    unknown = set(counts) - set(SPLITS)
    if unknown or any(int(c) < 0 for c in counts.values()):
        raise ValueError(f"counts must map splits {SPLITS} to non-negative numbers, got {counts}")
    bad = [c for c in classes if c not in CLASSES]
    if bad or not classes:
        raise ValueError(f"classes must be procedural ModelNet10 classes ({', '.join(CLASSES)}), got {bad or 'none'}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    counts = {split: int(counts.get(split, 0)) for split in SPLITS}
    out = Path(out)
    recipe = {"generator": GENERATOR, "version": VERSION, "seed": int(seed),
              "parameters": {"counts": counts, "classes": list(classes), "image_size": image_size, "grid": grid,
                             "supersample": supersample, "shard_size": shard_size}}
    manifest = prepare_folder(out, recipe)
    jobs = [(split, k, shard) for split in SPLITS for k, shard in enumerate(_shards(counts[split], shard_size))]
    bar = tqdm(total=sum(counts.values()), desc="images and voxels", unit="example", disable=not progress)
    for split, k, shard in jobs:
        name = f"{split}/shard_{k:04d}.npz"
        path = out / name
        if name in manifest["files"] and path.is_file() and sha256(path) == manifest["files"][name]:
            bar.update(len(shard))
            continue
        examples = []
        for i in shard:
            examples.append(make_example(seed, split, i, classes, image_size, grid, supersample))
            bar.update()
        arrays = {"images": np.stack([e["image"] for e in examples]),
                  "voxels": np.packbits(np.stack([e["voxels"].ravel() for e in examples]), axis=1),
                  "labels": np.array([e["label"] for e in examples], dtype=np.uint8),
                  "views": np.stack([e["view"] for e in examples]),
                  "indices": np.array(list(shard), dtype=np.int32)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, scan_bytes(arrays))
        record_file(out, manifest, name)
    bar.close()
    return out


@dataclass
class ImageVoxels:
    """One split in memory: images (N, S, S, 3) uint8, voxels (N, G, G, G) bool, labels (N,) int,
    views (N, 3) (azimuth and elevation in degrees, distance in radii) and the class names."""

    images: np.ndarray
    voxels: np.ndarray
    labels: np.ndarray
    views: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def load_split(folder: str | os.PathLike, split: str, verify: bool = True) -> ImageVoxels:
    """Read one split of a folder written by ``write_dataset``.

    Raises:
        ValueError: if the folder was not written by ``write_dataset``, is incomplete, or (with
            ``verify``) a shard's checksum differs from the manifest; regenerate it then.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("generator") != GENERATOR:
        raise ValueError(f"{folder} holds no image/voxel dataset (no {GENERATOR} manifest); write one with "
                         "write_dataset")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    parameters = manifest["parameters"]
    names = [f"{split}/shard_{k:04d}.npz" for k in range(len(_shards(parameters["counts"][split],
                                                                      parameters["shard_size"])))]
    missing = [name for name in names if name not in manifest["files"]]
    if missing:
        raise ValueError(f"{folder} is incomplete ({len(missing)} {split} shards missing); run write_dataset "
                         "again with the same arguments to finish it")
    if verify:
        changed = [name for name in verify_folder(folder) if name in names]
        if changed:
            raise ValueError(f"{folder}/{changed[0]} does not match its manifest checksum; delete the folder "
                             "and regenerate it")
    grid, size = parameters["grid"], parameters["image_size"]
    parts = {"images": [], "voxels": [], "labels": [], "views": []}
    for name in names:
        with np.load(folder / name, allow_pickle=False) as shard:
            for key in parts:
                parts[key].append(shard[key])
    n = parameters["counts"][split]
    voxels = np.unpackbits(np.concatenate(parts["voxels"]) if n else np.zeros((0, grid ** 3 // 8), np.uint8),
                           axis=1, count=grid ** 3).astype(bool).reshape(-1, grid, grid, grid)
    images = np.concatenate(parts["images"]) if n else np.zeros((0, size, size, 3), np.uint8)
    labels = np.concatenate(parts["labels"]).astype(np.int64) if n else np.zeros(0, np.int64)
    views = np.concatenate(parts["views"]) if n else np.zeros((0, 3), np.float32)
    return ImageVoxels(images, voxels, labels, views, tuple(parameters["classes"]))


class ImageVoxelSequence(keras.utils.PyDataset):
    """Batches (images (B, S, S, 3) float32 with values 0-255, voxels (B, G, G, G, 1) float32 0/1) of
    an ``ImageVoxels`` split. With ``shuffle`` the order changes every epoch, drawn from
    (``seed``, epoch), so a run is reproducible. With ``whole_batches`` the last, smaller batch is
    left out: a batch of another size makes TensorFlow trace the training step a second time,
    which for a short run costs more than the examples are worth (shuffled, the examples left out
    change every epoch)."""

    def __init__(self, data: ImageVoxels, batch_size: int = 16, shuffle: bool = True, seed: int = 0,
                 whole_batches: bool = False, **kwargs):
        super().__init__(**kwargs)
        if len(data) == 0:
            raise ValueError("the split holds no examples")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if whole_batches and len(data) < batch_size:
            raise ValueError(f"the split holds {len(data)} examples, fewer than one whole batch of {batch_size}")
        self.data, self.batch_size, self.shuffle, self.seed, self.epoch = data, batch_size, shuffle, seed, 0
        self.whole_batches = whole_batches

    def __len__(self) -> int:
        if self.whole_batches:
            return len(self.data) // self.batch_size
        return math.ceil(len(self.data) / self.batch_size)

    def order(self) -> np.ndarray:
        n = len(self.data)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range ({len(self)} batches)")
        picked = self.order()[index * self.batch_size:(index + 1) * self.batch_size]
        return (self.data.images[picked].astype(np.float32),
                self.data.voxels[picked, ..., None].astype(np.float32))

    def on_epoch_end(self):
        self.epoch += 1
