"""OFF meshes: the real ModelNet files, the quirks real files have, clear errors, and fuzzing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcfilter_lib.io.off import OffError, format_off, read_off, write_off

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "modelnet10"
REAL = sorted(FIXTURES.glob("*/*/*.off")) if FIXTURES.is_dir() else []


@pytest.mark.skipif(not REAL, reason=f"the real ModelNet10 fixtures are missing ({FIXTURES})")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_modelnet_files(path):
    vertices, triangles = read_off(path)
    header = path.read_text().split("\n", 2)
    counts = (header[0][3:] or header[1]).split()
    assert vertices.shape == (int(counts[0]), 3)
    assert triangles.shape[1] == 3 and len(triangles) >= int(counts[1])
    assert triangles.min() >= 0 and triangles.max() < len(vertices)
    assert np.isfinite(vertices).all()
    assert len(np.unique(triangles)) > 3


@pytest.mark.skipif(not REAL, reason=f"the real ModelNet10 fixtures are missing ({FIXTURES})")
def test_real_file_with_fused_header_and_crlf(tmp_path):
    """Rewrite a real file the way some ModelNet files look: 'OFF<counts>' on one line, CRLF ends."""
    original = REAL[0]
    vertices, triangles = read_off(original)
    lines = original.read_text().splitlines()
    fused = tmp_path / "fused.off"
    fused.write_bytes(("OFF" + lines[1] + "\r\n" + "\r\n".join(lines[2:]) + "\r\n").encode())
    v2, t2 = read_off(fused)
    np.testing.assert_array_equal(v2, vertices)
    np.testing.assert_array_equal(t2, triangles)


def _write(tmp_path, text: str, name="mesh.off") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_comments_blank_lines_and_polygons(tmp_path):
    text = "# a comment\n\nOFF\n# counts follow\n5 2 0\n0 0 0\n1 0 0  # corner\n1 1 0\n\n0 1 0\n0.5 0.5 1\n" \
           "4 0 1 2 3\n3 0 1 4 255 0 0\n"
    vertices, triangles = read_off(_write(tmp_path, text))
    assert vertices.shape == (5, 3)
    np.testing.assert_array_equal(triangles, [[0, 1, 2], [0, 2, 3], [0, 1, 4]])


def test_fused_keyword_and_counts(tmp_path):
    vertices, triangles = read_off(_write(tmp_path, "OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"))
    assert vertices.shape == (3, 3) and triangles.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("PLY\n3 1 0\n", "OFF keyword"),
    ("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n", "declares 4 vertices but the file holds only 3"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n3 0 1 2\n", "line 5: vertex 2 needs three coordinates, found 4"),
    ("OFF\n3 2 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "declares 2 faces but the file holds only 1"),
    ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", "line 4: vertex 1 has a non-numeric"),
    ("OFF\n3 1 0\n0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n", "non-finite"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n", "line 6: face 0 uses vertex index 3"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 -1 2\n", "vertex index -1"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", "k >= 3"),
    ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n1 2 3\n", "line 7: more data"),
    ("OFF\n0 0 0\n", "empty mesh"),
    ("OFF\nthree 1 0\n", "not whole numbers"),
    ("OFF\n3\n", "counts"),
])
def test_bad_files_name_file_and_line(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(OffError, match=match) as error:
        read_off(path)
    assert str(path) in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no OFF file"):
        read_off(tmp_path / "absent.off")


def test_write_then_read(tmp_path):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    write_off(tmp_path / "quad.off", vertices, [[0, 1, 2, 3]])
    v, t = read_off(tmp_path / "quad.off")
    np.testing.assert_allclose(v, vertices)
    assert t.tolist() == [[0, 1, 2], [0, 2, 3]]
    with pytest.raises(ValueError):
        format_off(np.zeros((0, 3)), [[0, 1, 2]])


coordinates = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def meshes(draw):
    n = draw(st.integers(3, 12))
    vertices = np.array(draw(st.lists(st.tuples(coordinates, coordinates, coordinates), min_size=n, max_size=n)))
    faces = draw(st.lists(st.lists(st.integers(0, n - 1), min_size=3, max_size=6), min_size=1, max_size=8))
    return vertices, faces


@given(mesh=meshes(), fused=st.booleans(), crlf=st.booleans(), comments=st.booleans())
def test_fuzz_round_trip(tmp_path_factory, mesh, fused, crlf, comments):
    """Any mesh, written with any mix of the quirks, reads back as its fan triangulation."""
    vertices, faces = mesh
    lines = format_off(vertices, faces).splitlines()
    if fused:
        lines = ["OFF" + lines[1]] + lines[2:]
    if comments:
        lines = ["# made by a fuzzer", ""] + [f"{line}  # c" if i % 3 == 0 else line for i, line in enumerate(lines)]
    path = tmp_path_factory.mktemp("fuzz") / "mesh.off"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode())
    v, t = read_off(path)
    np.testing.assert_allclose(v, vertices, rtol=1e-5, atol=1e-3)
    expected = [(f[0], f[j], f[j + 1]) for f in faces for j in range(1, len(f) - 1)]
    assert t.tolist() == [list(e) for e in expected]


@given(text=st.text(alphabet="OF0123456789 .-#\n\rxe", max_size=200))
def test_fuzz_garbage_gives_clear_errors(tmp_path_factory, text):
    """Random text either parses into a valid mesh or fails with an OffError naming the file."""
    path = tmp_path_factory.mktemp("garbage") / "g.off"
    path.write_text(text)
    try:
        vertices, triangles = read_off(path)
    except OffError as error:
        assert str(path) in str(error)
    else:
        assert len(vertices) > 0 and len(triangles) > 0 and triangles.max() < len(vertices)
