"""Fetch the two labelled real scans (Photoneo PhoXi, PointCleanNet pairs) into the data folder, and
install their organised form (PTX) from a local copy.

    python data_scripts/download_realscans.py                 # <data folder>/realscans
    python data_scripts/download_realscans.py --from DIR      # install a local copy (folder, .zip or .tar)
    python data_scripts/download_realscans.py --out DIR

The scans come from the public repository of the original 2020 work, at pinned commits:
``apple_03`` (fruit on a support; sparse, isolated false points) and ``gpu_006`` (a graphics card;
dense false surfaces next to tall shiny parts), each as ``name.xyz`` (``x y z`` per line) and
``name.outliers`` (one 0/1 per line, 1 = outlier). That repository carries no license file, so the
scans are fetched for the user and never shipped with pcfilter. Only these four files are fetched.

The same two scans as the scanner saw them (``ORGANISED``: ``NAME.ptx.gz``, the whole sensor grid in
the camera frame; ``NAME.outliers.gz``, one label per PTX point line; ``NAME.camera.json``, the
camera's calibration) have no public address. With ``--from`` naming a folder (the files in it or in
its ``organised/`` subfolder) or an archive that holds them, they are checked and installed into
``<out>/organised``; a source that holds none of them installs the point clouds alone, and a download
from the network says that the organised form must come with ``--from``.

Every file is checked against its sha256 before it gets its final name; a file already in place
with the right checksum is kept, an interrupted download resumes from ``name.part`` (an HTTP range
request), and copies from ``--from`` are written atomically. Evaluate a filter on the scans with
``pcfilter evaluate --data <data folder>/realscans --per-file`` or
``python benchmarks/realscan_quality.py --data <data folder>/realscans`` (both forms), and the organised
scans with ``pcfilter evaluate --data <data folder>/realscans/organised --per-file``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pcfilter_lib import config
from pcfilter_lib.io.files import atomic_path, atomic_write_text, sha256

REPOSITORY = "gajdosech2/pointcleannet"
FOLDER = "data/pointCleanNetOutliersTrainingSet"
URL = "https://raw.githubusercontent.com/{repository}/{commit}/{folder}/{name}"
CHUNK = 1 << 20


@dataclass(frozen=True)
class ScanFile:
    """One file of a labelled scan: its name, the commit it is pinned to and its sha256."""

    name: str
    commit: str
    sha256: str


APPLE, GPU = "0057d71249608ae12f23f1637b391b53876d61d8", "5e4e7f5198db07c77f33fe3a1e4b4f8611425d97"
FILES = (ScanFile("apple_03.xyz", APPLE, "1ac85cf95a9256244581176a1c120911df689152247c3fca842a580aace878e7"),
         ScanFile("apple_03.outliers", APPLE, "5219f8f9b97c1694f7daf0ae6920fcec7a95e5408c0e69b57ef62f7012f05124"),
         ScanFile("gpu_006.xyz", GPU, "a359ac118f69e0ee557ddfd7f7591ed36ec8b22269baba846f4585f6c76dfdd1"),
         ScanFile("gpu_006.outliers", GPU, "f690ff0ca614c9effa946644ebf3b3bf7f92a1565ef5b3e1e8a2fa09da10595b"))
ORGANISED_FOLDER = "organised"
# The organised form: no public address (commit ""), installed from a local copy only.
ORGANISED = tuple(ScanFile(name, "", digest) for name, digest in (
    ("apple_03.ptx.gz", "5743c3d2641e7b62388757526301789ba951b11d85d865250fc4d50062e119ca"),
    ("apple_03.outliers.gz", "88149356c9c989c41ee08877b0b4530abdd9f9c7fa7f41db3d8fc338ad019ee5"),
    ("apple_03.camera.json", "979ad850c8411cd18ab6886d5cc3e2f55a561ee1c10c9ac90f29b0f9ade1bff4"),
    ("gpu_006.ptx.gz", "0f90d661e94ce6520e2021fc9f338d1c29ffa1d511704b5d48bfe266761d3974"),
    ("gpu_006.outliers.gz", "82008fc8748f9db30de8e2a3145131e56694f1317c3ba042d41342ca6a72c132"),
    ("gpu_006.camera.json", "9c0b8994a515ea4ad9aa35276854f1768bc1b88c26200d9b2ee31d426399e27c")))


class DownloadError(RuntimeError):
    """A scan could not be fetched, or a file failed its checksum."""


def file_url(file: ScanFile, url: str = URL) -> str:
    """The raw-file address of ``file`` at its pinned commit (``url`` is a template with {repository},
    {commit}, {folder} and {name})."""
    return url.format(repository=REPOSITORY, commit=file.commit, folder=FOLDER, name=file.name)


def _wrong_checksum(what: str, file: ScanFile, got: str) -> DownloadError:
    origin = f"of {REPOSITORY}@{file.commit[:7]}" if file.commit else "in its organised form"
    return DownloadError(f"{what} has sha256 {got}, expected {file.sha256}: it is not the labelled scan "
                         f"{file.name} {origin}")


def fetch(file: ScanFile, folder: Path, url: str = URL, timeout: float = 30) -> Path:
    """Download ``file`` into ``folder`` (resuming ``name.part``) and check its sha256.

    Raises:
        DownloadError: no network, an HTTP error, or a wrong checksum (the damaged part is removed).
    """
    target, address = folder / file.name, file_url(file, url)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(address, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if not (error.code == 416 and have):  # 416: the part file already holds everything
            raise DownloadError(f"{address} answered HTTP {error.code} {error.reason}") from error
        response = None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"cannot reach {address} ({getattr(error, 'reason', error)}); no network? Copy the "
                            "scans from a machine that has them and install them with --from DIR") from error
    if response is not None:
        with response, open(part, "ab") as out:
            skip = 0 if getattr(response, "status", None) == 206 else have  # a server that ignored the range
            while block := response.read(CHUNK):
                drop = min(skip, len(block))
                skip -= drop
                out.write(block[drop:])
    got = sha256(part)
    if got != file.sha256:
        part.unlink()
        raise _wrong_checksum(f"the download of {address}", file, got)
    os.replace(part, target)
    return target


def _read_local(source: Path, name: str) -> bytes:
    """The bytes of ``name`` from a folder or a .zip / .tar(.gz) archive (found by its base name)."""
    if source.is_dir():
        path = source / name
        if not path.is_file() and (source / ORGANISED_FOLDER / name).is_file():
            path = source / ORGANISED_FOLDER / name
        if not path.is_file():
            raise DownloadError(f"{source} holds no {name}; it should hold the files listed in "
                                "data_scripts/download_realscans.py")
        return path.read_bytes()
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and Path(m.filename).name == name]
            if len(members) == 1:
                return archive.read(members[0])
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and Path(m.name).name == name]
            if len(members) == 1:
                return archive.extractfile(members[0]).read()
    else:
        raise DownloadError(f"{source} is neither a folder nor a .zip or .tar archive")
    raise DownloadError(f"{source} holds {'no' if not members else 'more than one'} {name}")


def install_local(file: ScanFile, source: Path, folder: Path) -> Path:
    """Copy ``file`` from a folder or archive into ``folder`` atomically, after checking its sha256.

    Raises:
        DownloadError: the file is missing from ``source`` or has the wrong checksum.
    """
    target = folder / file.name
    with atomic_path(target) as tmp:
        tmp.write_bytes(_read_local(source, file.name))
        got = sha256(tmp)
        if got != file.sha256:
            raise _wrong_checksum(str(source / file.name) if source.is_dir() else f"{file.name} in {source}", file,
                                  got)
    return target


def _holds(source: Path, name: str) -> bool:
    """Whether the folder or archive ``source`` holds ``name`` (see ``_read_local``)."""
    try:
        _read_local(source, name)
    except DownloadError:
        return False
    return True


def install(out: Path, source: Path | None = None, url: str = URL, timeout: float = 30,
            files: tuple[ScanFile, ...] | None = None, progress: bool = False) -> list[Path]:
    """Put ``files`` (default ``FILES``) into ``out`` from the network (``url``) or from ``source``,
    and, when ``source`` holds any of them, the ``ORGANISED`` files into ``out/organised``; files
    already there with the right checksum are kept. Returns their paths.

    Raises:
        DownloadError: see ``fetch`` and ``install_local``; ``source`` holds some of the organised
            files but not all.
    """
    files = FILES if files is None else files
    if source is not None and not source.exists():
        raise DownloadError(f"{source} does not exist")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file in files:
        target = out / file.name
        if target.is_file() and sha256(target) == file.sha256:
            paths.append(target)
            continue
        if progress:
            print(f"{file.name}: {'copying from ' + str(source) if source else 'fetching ' + file_url(file, url)}",
                  flush=True)
        paths.append(install_local(file, source, out) if source else fetch(file, out, url, timeout))
    sources = [f"{f.sha256}  {f.name}  {file_url(f)}\n" for f in files]
    organised = out / ORGANISED_FOLDER
    if source is not None and any(_holds(source, f.name) for f in ORGANISED):
        organised.mkdir(exist_ok=True)
        for file in ORGANISED:
            target = organised / file.name
            if not (target.is_file() and sha256(target) == file.sha256):
                if progress:
                    print(f"{ORGANISED_FOLDER}/{file.name}: copying from {source}", flush=True)
                install_local(file, source, organised)
            paths.append(target)
    elif progress:
        print(f"the organised form (PTX) of the scans has no public address: install it with --from DIR from a "
              f"copy that holds it (the files {', '.join(f.name for f in ORGANISED[:3])}, ...)", flush=True)
    sources += [f"{f.sha256}  {ORGANISED_FOLDER}/{f.name}  local copy\n" for f in ORGANISED
                if (organised / f.name).is_file()]
    atomic_write_text(out / "SOURCE.txt", "".join(sources))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="target folder (default: <data folder>/realscans)")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                        help="install from a local folder or .zip / .tar archive instead of the network")
    parser.add_argument("--url", default=URL, help="address template with {repository}, {commit}, {folder}, "
                        "{name} (default: raw GitHub files)")
    parser.add_argument("--timeout", type=float, default=30, help="network timeout in seconds")
    args = parser.parse_args(argv)
    out = args.out or config.data_dir() / "realscans"
    try:
        install(out, args.source, args.url, args.timeout, progress=True)
    except (DownloadError, OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        print(f"download_realscans: {error}", file=sys.stderr)
        return 1
    organised = " (their organised form in organised/)" if (out / ORGANISED_FOLDER).is_dir() else ""
    print(f"the labelled real scans are in {out}{organised}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
