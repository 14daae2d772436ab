"""The scan file: one ``.npz`` per organised scan (the format of the design notes).

Required arrays (H, W = image height and width; camera frame, metres):

=====================  ================  ======================================================
key                    shape, dtype      meaning
=====================  ================  ======================================================
xyz                    (H, W, 3) f4      measured point per pixel, NaN where there is none
intensity              (H, W) f4         grey value in [0, 1]
normals                (H, W, 3) f4      unit normals estimated from the measured points
valid                  (H, W) bool       True where a point was measured
label                  (H, W) u1         1 true geometry, 0 artefact, 255 no point
kind                   (H, W) u1         cause code (``pcfilter_lib.simulate.scanner.KIND_NAMES``)
intrinsics             (3, 3) f4         camera matrix
pose                   (4, 4) f4         camera-to-world transform
meta                   () str            JSON: generator, version, seed, parameters, scene...
=====================  ================  ======================================================

Simulated scans add ``clean_xyz`` (the true surface point wherever a point was measured),
``surface`` (id of the surface each pixel sees, 255 = none), the projector's ``projector_intrinsics``
and ``projector_pose``, and the scene's triangles ``mesh_vertices`` (world frame), ``mesh_triangles``
and ``mesh_surface``. Asked for, they add ``semantic`` (H, W) u1, the semantic class of the surface
each pixel sees (``pcfilter_lib.labels.SEMANTIC_NAMES``, 0 = background).
Files are written byte for byte reproducibly (fixed zip dates, fixed order).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from pcfilter_lib.io.files import atomic_write_bytes, is_zip_file
from pcfilter_lib.labels import LABEL_VALUES, SEMANTIC_NAMES

REQUIRED = ("xyz", "intensity", "normals", "valid", "label", "kind", "intrinsics", "pose", "meta")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def scan_bytes(scan: dict) -> bytes:
    """The ``.npz`` bytes of ``scan`` (arrays plus ``meta`` as a dict or JSON string), reproducibly:
    entries in the order given, fixed dates, deflate compression."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in scan.items():
            if name == "meta" and isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            array = io.BytesIO()
            np.lib.format.write_array(array, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, array.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
    return buffer.getvalue()


def save_scan(path: str | os.PathLike, scan: dict) -> None:
    """Check ``scan`` and write it to ``path`` atomically (never a half-written file)."""
    validate_scan(scan, str(path))
    atomic_write_bytes(path, scan_bytes(scan))


def load_scan(path: str | os.PathLike, arrays: tuple[str, ...] | None = None) -> dict:
    """Read and check a scan file. Returns its arrays and ``meta`` decoded to a dict.

    ``arrays`` limits what is read (the required keys are always read and checked).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scan file {path} does not exist")
    unreadable = f"{path} is not a readable scan .npz file"
    remedy = "give a scan written by 'pcfilter simulate' or pcfilter_lib.io.scan.save_scan"
    if not is_zip_file(path):  # NumPy would try it as a pickle and advise loading it unsafely
        raise ValueError(f"{unreadable}: it is not a zip archive of NumPy arrays; {remedy}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files if arrays is None else [k for k in archive.files if k in REQUIRED or k in arrays]
            scan = {name: archive[name] for name in names}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        reason = ("it holds Python objects, which are never loaded from a file because loading them can run code"
                  if "pickle" in str(error) else f"its archive cannot be read ({str(error).rstrip('.; ')})")
        raise ValueError(f"{unreadable}: {reason}; {remedy}") from error
    validate_scan(scan, str(path))
    scan["meta"] = json.loads(str(scan["meta"]))
    return scan


def validate_scan(scan: dict, where: str = "scan") -> None:
    """Raise ValueError naming the problem if ``scan`` does not follow the scan format."""
    missing = [key for key in REQUIRED if key not in scan]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)} (a scan needs {', '.join(REQUIRED)})")
    xyz = np.asarray(scan["xyz"])
    if xyz.ndim != 3 or xyz.shape[2] != 3 or min(xyz.shape[:2]) < 1:
        raise ValueError(f"{where}: xyz must have shape (H, W, 3), got {xyz.shape}")
    hw = xyz.shape[:2]
    expected = {"intensity": hw, "normals": (*hw, 3), "valid": hw, "label": hw, "kind": hw,
                "intrinsics": (3, 3), "pose": (4, 4), "clean_xyz": (*hw, 3), "surface": hw, "semantic": hw}
    for key, shape in expected.items():
        if key in scan and np.shape(scan[key]) != shape:
            raise ValueError(f"{where}: {key} must have shape {shape} to match xyz, got {np.shape(scan[key])}")
    for key, kinds in {"xyz": "f", "intensity": "f", "normals": "f", "valid": "b", "label": "u", "kind": "u"}.items():
        if np.asarray(scan[key]).dtype.kind != kinds:
            raise ValueError(f"{where}: {key} has dtype {np.asarray(scan[key]).dtype}, expected "
                             f"{ {'f': 'float', 'b': 'bool', 'u': 'uint8'}[kinds] }")
    if "semantic" in scan:
        semantic = np.asarray(scan["semantic"])
        if semantic.dtype != np.uint8 or (semantic.size and int(semantic.max()) >= len(SEMANTIC_NAMES)):
            raise ValueError(f"{where}: semantic must be uint8 class codes 0-{len(SEMANTIC_NAMES) - 1} "
                             f"(pcfilter_lib.labels.SEMANTIC_NAMES), got dtype {semantic.dtype}")
    valid = np.asarray(scan["valid"])
    finite = np.isfinite(xyz).all(-1)
    if not np.array_equal(valid, finite):
        raise ValueError(f"{where}: valid disagrees with xyz at {int((valid != finite).sum())} pixels "
                         "(valid must be True exactly where xyz is finite)")
    label = np.asarray(scan["label"])
    bad = ~np.isin(label, LABEL_VALUES)
    if bad.any():
        raise ValueError(f"{where}: label holds values {sorted(set(np.unique(label[bad]).tolist()))}; "
                         "only 0 (artefact), 1 (true) and 255 (no point) are allowed")
    if not np.array_equal(label == 255, ~valid):
        raise ValueError(f"{where}: label must be 255 exactly where there is no point")
    for key in ("intrinsics", "pose"):
        if not np.isfinite(np.asarray(scan[key], dtype=float)).all():
            raise ValueError(f"{where}: {key} holds NaN or infinite values")
    meta = scan["meta"]
    if not isinstance(meta, dict):
        try:
            meta = json.loads(str(np.asarray(meta)))
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: meta is not a JSON string ({error})") from error
        if not isinstance(meta, dict):
            raise ValueError(f"{where}: meta must be a JSON object")
