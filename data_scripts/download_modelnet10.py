"""Download and unpack the official ModelNet10 archive (about 473 MB) into the data folder.

    python data_scripts/download_modelnet10.py                      # <data folder>/ModelNet10
    python data_scripts/download_modelnet10.py --sha256 HEX --size BYTES

The download goes to `ModelNet10.zip.part` and resumes from there when interrupted (an HTTP range
request; a server that ignores it is read past the bytes already held). The finished archive is
checked against the expected size and sha256 when given; otherwise its sha256 is printed and
recorded so that later downloads can be checked against it. Extraction refuses absolute paths,
`..` members and links, and unpacks into a temporary folder that is renamed into place, so the data
folder never holds half an archive. Without a network the script says so in one line and points to
the procedural stand-in (`pcfilter modelnet --synthetic --out DIR`), which every chapter accepts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from pcfilter_lib import config
from pcfilter_lib.io.files import atomic_write_text, sha256

URL = "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The archive could not be fetched or failed its checks."""


def download(url: str, target: Path, size: int | None = None, digest: str | None = None,
             progress: bool = False, timeout: float = 30) -> Path:
    """Fetch ``url`` to ``target``, resuming ``target.part``; verify size and sha256 if given."""
    target = Path(target)
    if target.exists() and _matches(target, size, digest):
        return target
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part file already holds everything
            response = None
        else:
            raise DownloadError(f"{url} answered HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot reach {url} ({reason}); no network? Generate the procedural stand-in "
                            "instead: pcfilter modelnet --synthetic --out DIR") from error
    if response is not None:
        with response:
            resumed = getattr(response, "status", None) == 206
            skip = 0 if resumed else have  # a server that ignored the range sends everything again
            total = response.headers.get("Content-Length")
            total = int(total) + (have if resumed else 0) if total else size
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name)
            with open(part, "ab") as out:
                while block := response.read(CHUNK):
                    if skip:
                        drop = min(skip, len(block))
                        block, skip = block[drop:], skip - drop
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
            if bar is not None:
                bar.close()
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        if got > size:
            part.unlink()
        raise DownloadError(f"{part} holds {got} bytes, expected {size}; run again to "
                            f"{'resume' if got < size else 'download it afresh'}")
    if digest is not None and sha256(part) != digest.lower():
        part.unlink()
        raise DownloadError(f"the download of {url} has the wrong sha256 (expected {digest}); "
                            "the damaged file was removed, run again")
    os.replace(part, target)
    return target


def _matches(path: Path, size: int | None, digest: str | None) -> bool:
    return (size is None or path.stat().st_size == size) and (digest is None or sha256(path) == digest.lower())


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if not path.parts or path.is_absolute() or ":" in path.parts[0]:
        raise DownloadError(f"the archive member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise DownloadError(f"the archive member {name!r} points outside the target ('..'); refusing to extract")
    return path


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip archive into ``dest`` safely and atomically; returns ``dest``.

    Every member is checked before anything is written; the files go to a temporary folder beside
    ``dest`` that is renamed to ``dest`` at the end. An existing ``dest`` is never overwritten.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest} already exists; remove it first to extract again")
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            _safe_name(member.filename)
            mode = member.external_attr >> 16
            if (mode & 0o170000) == 0o120000:
                raise DownloadError(f"the archive member {member.filename!r} is a symbolic link; refusing to extract")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for member in members:
                target = tmp.joinpath(*_safe_name(member.filename).parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            # The official archive holds one top folder (ModelNet10/); unwrap it.
            inner = [p for p in tmp.iterdir() if not p.name.startswith("__MACOSX")]
            source = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp
            os.replace(source, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=URL, help=f"archive URL (default: {URL})")
    parser.add_argument("--out", type=Path, default=config.data_dir(),
                        help="folder that receives ModelNet10.zip and ModelNet10/ (default: the data folder)")
    parser.add_argument("--size", type=int, default=None, help="expected archive size in bytes")
    parser.add_argument("--sha256", default=None, help="expected sha256 of the archive")
    parser.add_argument("--timeout", type=float, default=30, help="network timeout in seconds")
    args = parser.parse_args(argv)
    archive = args.out / "ModelNet10.zip"
    try:
        download(args.url, archive, args.size, args.sha256, progress=True, timeout=args.timeout)
        digest = sha256(archive)
        if args.sha256 is None:
            print(f"sha256 of {archive.name}: {digest} (pass --sha256 {digest} to check later downloads)")
        dest = extract(archive, args.out / "ModelNet10")
        atomic_write_text(dest.parent / "ModelNet10.sha256", f"{digest}  {archive.name}\n")
    except (DownloadError, zipfile.BadZipFile, OSError) as error:
        print(f"download_modelnet10: {error}", file=sys.stderr)
        return 1
    print(f"ModelNet10 is in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
