"""Safe file handling shared by every writer: atomic writes, checksums and dataset manifests.

Writes go to a temporary name in the target folder and are renamed into place, so an interrupted
run never leaves a half-written file under the final name. Every generated dataset folder carries a
``manifest.json`` naming its generator, version, seed and parameters and the sha256 of each file;
a folder whose manifest does not match what a run would generate is never mixed with new files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary name keeps the suffix of ``path`` (libraries such as NumPy and Keras look at it).
    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result into place, e.g. ``np.savez`` or ``model.save``."""
    with atomic_path(path) as tmp:
        write(tmp)


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest, or None if it has none. A manifest that is not valid JSON is an error."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete the folder to regenerate it") from error


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    atomic_write_text(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def same_recipe(manifest: dict | None, recipe: dict) -> bool:
    """True if ``manifest`` was written for ``recipe`` (generator, version, seed, parameters...).

    ``recipe`` holds the keys that decide the content; a manifest also holds ``files``.
    """
    return manifest is not None and all(manifest.get(key) == value for key, value in recipe.items())


def prepare_folder(folder: str | os.PathLike, recipe: dict) -> dict:
    """Get ``folder`` ready for a generator run and return its manifest.

    A missing or empty folder gets a new manifest for ``recipe``. A folder written for the same
    recipe is resumed: its manifest is returned with the files already made. A folder holding
    anything else is refused with a ValueError, so files from two versions are never mixed.
    """
    folder = Path(folder)
    manifest = read_manifest(folder) if folder.exists() else None
    if same_recipe(manifest, recipe):
        return manifest
    if folder.exists() and any(p.name != MANIFEST for p in folder.iterdir()):
        found = f"{manifest.get('generator')} {manifest.get('version')}" if manifest else "files without a manifest"
        raise ValueError(
            f"{folder} already holds other data ({found}); choose another folder or delete this one to regenerate"
        )
    manifest = {**recipe, "files": {}}
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(folder, manifest)
    return manifest


def record_file(folder: str | os.PathLike, manifest: dict, name: str) -> None:
    """Add a finished file's checksum to the manifest and save the manifest (atomically)."""
    manifest["files"][name] = sha256(Path(folder) / name)
    write_manifest(folder, manifest)


def verify_folder(folder: str | os.PathLike) -> list[str]:
    """Names of the files whose checksum differs from the manifest, or that are missing."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ValueError(f"{folder} has no {MANIFEST}: it was not written by pcfilter")
    return [name for name, digest in manifest.get("files", {}).items()
            if not (folder / name).exists() or sha256(folder / name) != digest]
