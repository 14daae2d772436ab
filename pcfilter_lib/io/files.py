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
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

MANIFEST = "manifest.json"


class CloudError(ValueError):
    """A point-cloud file (PLY, PCD, xyz, LAS/LAZ, PointCleanNet pair) that cannot be read; the message
    names it. Defined here, beneath every reader of ``pcfilter_lib.io``, so that each can raise it."""


def new_file_mode() -> int:
    """The mode ``open`` gives a new file: 0o666 less the process's umask (``mkstemp`` gives 0o600).

    Python before 3.13 can only read the umask by setting it, so it is set and put back at once.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


# The temporary name of a file being written: ``.NAME.XXXXXXXX.partSUFFIX`` beside it (``atomic_path``).
PART_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.[^.]+)?$")


def part_path(path: str | os.PathLike) -> Path:
    """A new temporary name beside ``path``, as ``atomic_path`` writes it: ``.NAME.XXXXXXXX.partSUFFIX``
    (hidden, random, and keeping the suffix that libraries such as NumPy and Keras look at)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")


def remove_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (``PART_NAME``) that an interrupted or killed run left anywhere under
    ``folder``, a folder one generator writes; returns them. Only names of this library's own
    pattern are touched."""
    stale = [p for p in Path(folder).rglob(".*.part*") if p.is_file() and PART_NAME.match(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``part_path``); on success it is renamed to ``path``.

    The file gets the mode of a new file under the user's umask. On any error, Ctrl-C included, the
    temporary file is removed and ``path`` is left as it was: the temporary name is chosen before the
    file is made, inside the ``try`` that removes it, so no moment leaves it behind.

    Raises:
        OSError: the folder cannot be created or written, or the write failed; an error of the write
            that names no file (a full disk: ENOSPC) or names the temporary file names ``path``.
            An error naming another file (such as an input read meanwhile) is raised as it is.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _raise_naming(error, path)
    tmp = part_path(path)
    try:
        try:
            for _ in range(100):  # another name if one is taken (one in 4e9)
                try:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                    break
                except FileExistsError:
                    tmp = part_path(path)
            yield tmp
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        except OSError as error:
            if error.filename is None or str(error.filename) == str(tmp):
                _raise_naming(error, path)
            raise
    finally:
        tmp.unlink(missing_ok=True)


def _raise_naming(error: OSError, path: Path) -> NoReturn:
    """Raise ``error`` again (errno, reason) naming the file meant to be written, not the temporary one."""
    if error.errno is None or error.strerror is None:
        raise error
    raise type(error)(error.errno, error.strerror, str(path)) from error


@contextlib.contextmanager
def naming_errors(path: str | os.PathLike) -> Iterator[None]:
    """Raise an OSError that names no file (a full disk: ENOSPC, from a buffered write) as one naming
    ``path``, the file being written, so that a run writing several files says which one failed."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            _raise_naming(error, Path(path))
        raise


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


# What to do about a manifest that cannot be read: nothing that would delete the files beside it.
MANIFEST_REMEDY = ("restore it from a copy, or make the data again into a new folder; the files beside it are "
                   "left as they are")


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest, or None if it has none.

    Raises:
        ValueError: the manifest is not valid JSON, or not a JSON object whose ``files`` maps names to
            checksums; the message says what is wrong with it and a remedy that deletes nothing.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): it was damaged or edited; {MANIFEST_REMEDY}") from error
    if not isinstance(manifest, dict):
        found = f"this one holds a JSON {type(manifest).__name__}"
    elif "files" not in manifest:
        found = "this one has no 'files'"
    elif not isinstance(manifest["files"], dict):
        found = f"its 'files' is a JSON {type(manifest['files']).__name__}"
    else:
        return manifest
    found = found.replace("JSON dict", "JSON object").replace("JSON str", "JSON string")
    raise ValueError(f"{path} is not a pcfilter manifest (a JSON object whose 'files' maps names to sha256; {found}); "
                     f"{MANIFEST_REMEDY}")


def write_manifest(folder: str | os.PathLike, manifest: dict) -> None:
    atomic_write_text(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def same_recipe(manifest: dict | None, recipe: dict) -> bool:
    """True if ``manifest`` was written for ``recipe`` (generator, version, seed, parameters...).

    ``recipe`` holds the keys that decide the content; a manifest also holds ``files``.
    """
    return manifest is not None and all(manifest.get(key) == value for key, value in recipe.items())


def recipe_differences(manifest: dict, recipe: dict) -> list[tuple[tuple[str, ...], object, object]]:
    """(key, the manifest's value, the recipe's value) of each setting of ``recipe`` that differs: a
    top-level key, or a key of a top-level mapping such as ``("parameters", "n")`` (None where one side
    lacks it)."""
    differences = []
    for key, value in recipe.items():
        old = manifest.get(key)
        if old == value:
            continue
        if isinstance(old, dict) and isinstance(value, dict):
            differences += [((key, name), old.get(name), value.get(name)) for name in (*value, *(n for n in old
                                                                                                if n not in value))
                            if old.get(name) != value.get(name)]
        else:
            differences.append(((key,), old, value))
    return differences


class RecipeMismatch(ValueError):
    """A folder written by the same generator with other settings (``prepare_folder``).

    Attributes:
        folder: the folder.
        differences: ``recipe_differences`` of its manifest and the recipe asked for, so that a command
            can name its options.
    """

    def __init__(self, folder: Path, differences: list):
        self.folder, self.differences = folder, differences
        shown = "; ".join(f"{'.'.join(key)} {old!r} (this run: {new!r})" for key, old, new in differences[:4])
        super().__init__(f"{folder} already holds other data, made with other settings: {shown}; give the same "
                         "settings to resume it, or choose another folder")


def prepare_folder(folder: str | os.PathLike, recipe: dict, replace: bool = False) -> dict:
    """Get ``folder`` ready for a generator run and return its manifest.

    A missing or empty folder gets a new manifest for ``recipe``. A folder written for the same
    recipe is resumed: its manifest is returned with the files already made, and the temporary files
    of an interrupted run (``remove_stale_parts``) are removed. With ``replace`` (for the data folders
    the library manages itself), a folder written by the same generator for another version or
    recipe, holding nothing but its manifest's files, is emptied and made again. Any other folder
    holding anything is refused with a ValueError (a ``RecipeMismatch`` naming the settings that differ
    where the same generator and version wrote it), so files from two versions are never mixed and
    nothing of the user's is deleted.
    """
    folder = Path(folder)
    manifest = read_manifest(folder) if folder.exists() else None
    if same_recipe(manifest, recipe):
        remove_stale_parts(folder)
        return manifest
    if replace and manifest and manifest.get("generator") == recipe.get("generator"):
        _remove_generated(folder, manifest)
    if folder.exists() and any(p.name != MANIFEST for p in folder.iterdir()):
        if manifest and (manifest.get("generator"), manifest.get("version")) == (recipe.get("generator"),
                                                                                 recipe.get("version")):
            raise RecipeMismatch(folder, recipe_differences(manifest, recipe))
        found = f"{manifest.get('generator')} {manifest.get('version')}" if manifest else "files without a manifest"
        raise ValueError(
            f"{folder} already holds other data ({found}); choose another folder, or delete this one to regenerate"
        )
    manifest = {**recipe, "files": {}}
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(folder, manifest)
    return manifest


def _remove_generated(folder: Path, manifest: dict) -> None:
    """Delete the files a manifest lists, then the manifest and the folders left empty, when the folder
    holds nothing else (otherwise leave it all in place)."""
    listed = {folder / name for name in manifest.get("files", {})} | {folder / MANIFEST}
    present = {p for p in folder.rglob("*") if p.is_file()}
    if not present <= listed:
        return
    for path in present:
        path.unlink()
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()


def record_file(folder: str | os.PathLike, manifest: dict, name: str) -> None:
    """Add a finished file's checksum to the manifest and save the manifest (atomically)."""
    manifest["files"][name] = sha256(Path(folder) / name)
    write_manifest(folder, manifest)


def verify_folder(folder: str | os.PathLike, manifest: dict | None = None) -> list[str]:
    """Names of the files of the manifest that are missing or whose sha256 differs from it.

    Args:
        folder: a folder written by a generator (``prepare_folder``, ``record_file``).
        manifest: its manifest, if already read; by default ``folder``'s ``manifest.json``.

    Returns:
        the damaged or missing names, in manifest order; a resumed run makes those again.

    Raises:
        ValueError: the folder has no manifest.
    """
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    if manifest is None:
        raise ValueError(f"{folder} has no {MANIFEST}: it was not written by pcfilter")
    return [name for name, digest in manifest.get("files", {}).items()
            if not (folder / name).is_file() or sha256(folder / name) != digest]


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first bytes (the second: an empty one)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_zip_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts as a zip archive does (.npz and .keras files are zip archives)."""
    with open(path, "rb") as handle:
        return handle.read(4) in ZIP_MAGIC


def is_hdf5_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the HDF5 signature (Keras' legacy .h5 files)."""
    with open(path, "rb") as handle:
        return handle.read(8) == HDF5_MAGIC


def check_input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` if it is a regular file that can be read.

    Args:
        path: the file named by the user.
        what: what the file is for, as the message should say it (e.g. ``"--model"``).

    Raises:
        FileNotFoundError: nothing is there.
        IsADirectoryError: it is a folder.
        PermissionError: it cannot be read.
        ValueError: it is something else (a device, a pipe, a socket).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; check the path")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; name a file in it")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a device, pipe or socket); name a file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{what} {path} cannot be read (permission denied)")
    return path


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` if a file can be written there: its folder exists and is writable and it is no folder.

    Called before any work, so that a run never ends by failing to write its result.

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: what should be its folder is a file.
        IsADirectoryError: ``path`` is a folder.
        PermissionError: no file can be made in the folder (permissions, a read-only file system).
        ValueError: ``path`` is a device, pipe or socket.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; name a file to write")
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file; name a file to write")
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot write {what} {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {what} {path}: the folder {folder} does not exist; create it first")
    _check_writable(folder, f"cannot write {what} {path}: the folder {folder}")
    return path


def _check_writable(folder: Path, naming: str) -> None:
    """A PermissionError starting with ``naming`` unless a file can be made in ``folder``: one is made
    and removed at once, which is what the writer will do, on any file system and as any user."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pcfilter-check."):
            pass
    except OSError as error:
        raise PermissionError(f"{naming} is not writable ({error.strerror or error}); choose another") from error


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` if files can be written in it: a writable folder, or a new one whose nearest existing
    parent folder is writable (it is created later, with its parents).

    Called before any work, so that a run over many inputs never finds out at its first write.

    Raises:
        NotADirectoryError: ``path``, or a parent of it, is a file.
        PermissionError: no file can be made in the folder, or it cannot be created.
        ValueError: ``path`` is a device, pipe or socket.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        if path.is_file():
            raise NotADirectoryError(f"{what} {path} is a file; name a folder")
        raise ValueError(f"{what} {path} is not a folder (a device, pipe or socket); name a folder")
    if path.is_dir():
        _check_writable(path, f"cannot write into {what} {path}: the folder {path}")
        return path
    parent = next(folder for folder in path.parents if folder.exists())  # '.' or '/' at the latest
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot create {what} {path}: {parent} is a file, not a folder")
    _check_writable(parent, f"cannot create {what} {path}: the folder {parent}")
    return path
