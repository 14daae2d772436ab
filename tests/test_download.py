"""The ModelNet10 download script, against archives this test builds and serves itself (file:// and a
loopback HTTP server); the real host is never contacted."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import socket
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("download_modelnet10", ROOT / "data_scripts" / "download_modelnet10.py")
dl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dl)

MESH = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"


def _archive(path: Path, extra: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ModelNet10/README.txt", "ModelNet10 test archive\n")
        for name in ("bathtub", "chair"):
            for split in ("train", "test"):
                zf.writestr(f"ModelNet10/{name}/{split}/{name}_0001.off", MESH + "# " + "x" * 5000 + "\n")
        for member, text in (extra or {}).items():
            zf.writestr(member, text)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files and honours 'Range: bytes=N-' like a real download server."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if "Range" in self.headers else 0
        if start >= len(data) and start:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    handler = functools.partial(_RangeHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_verify_and_extract_from_file_url(tmp_path):
    archive = _archive(tmp_path / "ModelNet10.zip")
    out = tmp_path / "data"
    code = dl.main(["--url", archive.as_uri(), "--out", str(out), "--size", str(archive.stat().st_size),
                    "--sha256", _digest(archive)])
    assert code == 0
    assert (out / "ModelNet10" / "chair" / "test" / "chair_0001.off").read_text().startswith("OFF")
    assert (out / "ModelNet10" / "README.txt").exists()
    assert (out / "ModelNet10.zip").read_bytes() == archive.read_bytes()
    assert not list(out.glob("*.part")) and not list(out.glob(".ModelNet10.*"))


def test_resume_over_http_with_range(tmp_path, server):
    archive = _archive(tmp_path / "ModelNet10.zip")
    target = tmp_path / "dl" / "ModelNet10.zip"
    target.parent.mkdir()
    half = archive.stat().st_size // 2
    (target.parent / "ModelNet10.zip.part").write_bytes(archive.read_bytes()[:half])
    dl.download(f"{server}/ModelNet10.zip", target, archive.stat().st_size, _digest(archive))
    assert target.read_bytes() == archive.read_bytes()


def test_resume_when_the_server_ignores_the_range(tmp_path):
    archive = _archive(tmp_path / "ModelNet10.zip")
    target = tmp_path / "dl" / "ModelNet10.zip"
    target.parent.mkdir()
    (target.parent / "ModelNet10.zip.part").write_bytes(archive.read_bytes()[:1000])
    dl.download(archive.as_uri(), target, archive.stat().st_size, _digest(archive))  # file:// has no ranges
    assert target.read_bytes() == archive.read_bytes()


def test_wrong_checksum_or_size_is_refused(tmp_path, server):
    _archive(tmp_path / "ModelNet10.zip")
    target = tmp_path / "dl" / "ModelNet10.zip"
    with pytest.raises(dl.DownloadError, match="wrong sha256"):
        dl.download(f"{server}/ModelNet10.zip", target, None, "0" * 64)
    assert not target.exists() and not target.with_name("ModelNet10.zip.part").exists()
    with pytest.raises(dl.DownloadError, match="expected 10"):
        dl.download(f"{server}/ModelNet10.zip", target, 10, None)
    assert not target.exists()
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.download(f"{server}/missing.zip", target)


@pytest.mark.parametrize("member, why", [("../evil.txt", r"outside the target \('..'\)"),
                                         ("ModelNet10/../../evil.txt", "outside the target"),
                                         ("/tmp/evil.txt", "absolute path"),
                                         ("C:/evil.txt", "absolute path")])
def test_malicious_members_are_refused_before_writing(tmp_path, member, why):
    archive = _archive(tmp_path / "bad.zip", {member: "owned"})
    dest = tmp_path / "out" / "ModelNet10"
    with pytest.raises(dl.DownloadError, match=why):
        dl.extract(archive, dest)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_malicious_archive_through_main_exits_with_one_line(tmp_path, capsys):
    archive = _archive(tmp_path / "ModelNet10.zip", {"../evil.txt": "owned"})
    assert dl.main(["--url", archive.as_uri(), "--out", str(tmp_path / "data")]) == 1
    reasons = [line for line in capsys.readouterr().err.splitlines() if line.startswith("download_modelnet10:")]
    assert len(reasons) == 1 and "refusing to extract" in reasons[0]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "data" / "ModelNet10").exists()


def test_existing_folder_is_not_overwritten(tmp_path):
    archive = _archive(tmp_path / "ModelNet10.zip")
    dest = tmp_path / "ModelNet10"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(dl.DownloadError, match="already exists"):
        dl.extract(archive, dest)
    assert (dest / "mine.txt").read_text() == "keep"


def test_no_network_says_so_in_one_line(tmp_path, capsys):
    with socket.socket() as sock:  # a loopback port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = dl.main(["--url", f"http://127.0.0.1:{port}/ModelNet10.zip", "--out", str(tmp_path), "--timeout", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "no network?" in err and "pcfilter modelnet --synthetic" in err
