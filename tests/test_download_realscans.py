"""The real-scan download script, against files, folders and archives this test makes and serves
itself (file:// and a loopback HTTP server); the real repository is never contacted."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import socket
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib.io.clouds import read_pointcleannet

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("download_realscans", ROOT / "data_scripts" / "download_realscans.py")
dl = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = dl  # dataclasses look their module up there
spec.loader.exec_module(dl)


def test_the_pinned_files_are_the_four_of_the_two_scans():
    assert {f.name for f in dl.FILES} == {f"{s}.{e}" for s in ("apple_03", "gpu_006") for e in ("xyz", "outliers")}
    assert all(len(f.commit) == 40 and len(f.sha256) == 64 for f in dl.FILES)
    url = dl.file_url(dl.FILES[0])
    assert url.startswith("https://raw.githubusercontent.com/gajdosech2/pointcleannet/" + dl.FILES[0].commit)
    assert url.endswith("/data/pointCleanNetOutliersTrainingSet/apple_03.xyz")


@pytest.fixture
def scans(tmp_path, monkeypatch):
    """Two small labelled clouds laid out as the repository serves them ({commit}/{folder}/{name}),
    with the script's checksum table pointed at them."""
    rng = np.random.default_rng(0)
    served = tmp_path / "served"
    files = []
    for scan in dl.FILES:
        if scan.name.endswith(".xyz"):
            text = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in rng.random((300, 3)))
        else:
            text = "".join(f"{int(v)}\n" for v in rng.random(300) < 0.1)
        path = served / scan.commit / dl.FOLDER / scan.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files.append(dataclasses.replace(scan, sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    monkeypatch.setattr(dl, "FILES", tuple(files))
    return served


def source_of(served: Path, name: str) -> Path:
    return next(served.rglob(name))


def test_download_checks_and_installs_every_file(scans, tmp_path):
    out = tmp_path / "data" / "realscans"
    assert dl.main(["--url", scans.as_uri() + "/{commit}/{folder}/{name}", "--out", str(out)]) == 0
    for file in dl.FILES:
        assert (out / file.name).read_bytes() == source_of(scans, file.name).read_bytes()
    points, outlier = read_pointcleannet(out / "gpu_006")
    assert points.shape == (300, 3) and outlier.dtype == bool
    assert not list(out.glob("*.part")) and not list(out.glob(".*"))
    assert "apple_03.xyz" in (out / "SOURCE.txt").read_text()


@pytest.fixture
def server(scans):
    class Ranged(http.server.SimpleHTTPRequestHandler):
        """Serves files and honours 'Range: bytes=N-'; counts the requests."""

        requests: list[str] = []

        def log_message(self, *args):
            pass

        def do_GET(self):
            Ranged.requests.append(self.path)
            path = Path(self.translate_path(self.path))
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if "Range" in self.headers else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            self.wfile.write(data[start:])

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Ranged, directory=str(scans)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{commit}}/{{folder}}/{{name}}", Ranged.requests
    httpd.shutdown()


def test_resumes_a_partial_download_and_keeps_files_already_in_place(scans, server, tmp_path):
    url, requests = server
    out = tmp_path / "realscans"
    out.mkdir()
    first, second = dl.FILES[0], dl.FILES[1]
    whole = source_of(scans, first.name).read_bytes()
    (out / (first.name + ".part")).write_bytes(whole[:len(whole) // 2])
    (out / second.name).write_bytes(source_of(scans, second.name).read_bytes())  # already complete
    dl.install(out, url=url)
    assert (out / first.name).read_bytes() == whole
    assert not any(second.name in r for r in requests)  # the complete file was not fetched again
    before = len(requests)
    dl.install(out, url=url)  # everything in place: nothing to fetch
    assert len(requests) == before


def test_a_wrong_checksum_or_a_missing_file_is_refused(scans, server, tmp_path):
    url, _ = server
    out = tmp_path / "realscans"
    source_of(scans, "apple_03.xyz").write_text("0 0 0\n")  # not the file the checksum names
    with pytest.raises(dl.DownloadError, match="has sha256 .* expected"):
        dl.install(out, url=url)
    assert not (out / "apple_03.xyz").exists() and not list(out.glob("*.part"))
    source_of(scans, "apple_03.xyz").unlink()
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.install(out, url=url)


def test_install_from_a_folder_or_an_archive(scans, tmp_path, capsys):
    folder = tmp_path / "copy"
    folder.mkdir()
    for file in dl.FILES:
        (folder / file.name).write_bytes(source_of(scans, file.name).read_bytes())
    out = tmp_path / "from_folder"
    assert dl.main(["--from", str(folder), "--out", str(out)]) == 0
    assert all((out / f.name).read_bytes() == (folder / f.name).read_bytes() for f in dl.FILES)

    archive = tmp_path / "scans.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in dl.FILES:
            zf.write(folder / file.name, f"realscans/{file.name}")
    dl.install(tmp_path / "from_zip", archive)
    tar = tmp_path / "scans.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        for file in dl.FILES:
            tf.add(folder / file.name, f"x/{file.name}")
    dl.install(tmp_path / "from_tar", tar)
    for target in ("from_zip", "from_tar"):
        assert all((tmp_path / target / f.name).read_bytes() == (folder / f.name).read_bytes() for f in dl.FILES)

    (folder / "gpu_006.outliers").write_text("1\n")  # damaged copy: refused, nothing half-written
    damaged = tmp_path / "damaged"
    assert dl.main(["--from", str(folder), "--out", str(damaged)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gpu_006.outliers has sha256" in err
    assert not (damaged / "gpu_006.outliers").exists() and not list(damaged.glob(".*"))
    (folder / "gpu_006.outliers").unlink()
    with pytest.raises(dl.DownloadError, match="holds no gpu_006.outliers"):
        dl.install(tmp_path / "missing", folder)
    with pytest.raises(dl.DownloadError, match="does not exist"):
        dl.install(tmp_path / "nowhere", tmp_path / "no_such_folder")


def test_no_network_says_so_in_one_line(scans, tmp_path, capsys):
    with socket.socket() as sock:  # a loopback port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = dl.main(["--url", f"http://127.0.0.1:{port}/{{commit}}/{{name}}", "--out", str(tmp_path), "--timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "no network?" in err and "--from DIR" in err


def test_the_organised_form_is_named_for_each_scan():
    names = {f.name for f in dl.ORGANISED}
    assert names == {f"{s}.{e}" for s in ("apple_03", "gpu_006") for e in ("ptx.gz", "outliers.gz", "camera.json")}
    assert all(f.commit == "" and len(f.sha256) == 64 for f in dl.ORGANISED)


@pytest.fixture
def organised(tmp_path, monkeypatch):
    """A local copy holding the organised files (small stand-ins) in its organised/ subfolder, with
    the script's checksum table pointed at them."""
    folder = tmp_path / "organised_copy" / "organised"
    folder.mkdir(parents=True)
    files = []
    for file in dl.ORGANISED:
        (folder / file.name).write_bytes(f"stand-in for {file.name}\n".encode())
        files.append(dataclasses.replace(file, sha256=hashlib.sha256((folder / file.name).read_bytes()).hexdigest()))
    monkeypatch.setattr(dl, "ORGANISED", tuple(files))
    return folder.parent


def test_the_organised_form_is_installed_from_a_local_copy(scans, server, organised, tmp_path, capsys):
    for file in dl.FILES:  # the point clouds beside organised/, as in the project's shared folder
        (organised / file.name).write_bytes(source_of(scans, file.name).read_bytes())
    out = tmp_path / "realscans"
    assert dl.main(["--from", str(organised), "--out", str(out)]) == 0
    assert "organised form in organised/" in capsys.readouterr().out
    for file in dl.ORGANISED:
        assert (out / "organised" / file.name).read_bytes() == (organised / "organised" / file.name).read_bytes()
    assert "organised/gpu_006.ptx.gz  local copy" in (out / "SOURCE.txt").read_text()

    tar = tmp_path / "organised.tar"  # an archive holding only the organised files, at any depth
    with tarfile.open(tar, "w") as tf:
        for file in dl.ORGANISED:
            tf.add(organised / "organised" / file.name, f"scans/ptx/{file.name}")
    paths = dl.install(tmp_path / "from_tar", tar, files=())
    assert sorted(p.name for p in paths) == sorted(f.name for f in dl.ORGANISED)

    (organised / "organised" / "gpu_006.camera.json").unlink()  # some but not all: refused
    with pytest.raises(dl.DownloadError, match="holds no gpu_006.camera.json"):
        dl.install(tmp_path / "partial", organised)
    (organised / "organised" / "apple_03.ptx.gz").write_text("damaged\n")
    with pytest.raises(dl.DownloadError, match="apple_03.ptx.gz .*in its organised form"):
        dl.install(tmp_path / "damaged", organised)

    url, _ = server  # from the network: the point clouds only, and a line saying where the rest comes from
    network = tmp_path / "network"
    dl.install(network, url=url, progress=True)
    assert not (network / "organised").exists()
    assert "no public address: install it with --from DIR" in capsys.readouterr().out
