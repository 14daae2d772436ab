"""LAS and LAZ clouds through ``pcfilter filter`` and ``pcfilter_lib.io.lidar``: files made here with laspy
(LAS 1.2 point formats 1 and 3, LAS 1.4 formats 6 and 7, with extra bytes), filtered by the real command
line with a classical method and the neighbour filter. Kept points must be the source's records bit for
bit, the header's format, version, scales and offsets kept; ``--classify`` must write every point with
class 7 exactly on the points a plain run removes; LAS to PLY and PLY to LAZ must round-trip; and the
chunked reader and writer must give the same records whatever the chunk size."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest
from laspy.vlrs.vlrlist import VLRList

from pcfilter_lib.cli import main
from pcfilter_lib.io import lidar
from pcfilter_lib.io.clouds import CloudWriter, open_stream, read_ply
from pcfilter_lib.io.lidar import INTENSITY_DIMENSION, NOISE_CLASS, extent_scales, lidar_header, open_lidar
from pcfilter_lib.io.organised import write_points

OFFSETS = np.array([512000.0, 4100000.0, 120.0])  # a cloud in UTM metres, far from the origin
SCALES = np.array([0.0001, 0.0001, 0.00025])


def cloud(n_side: int = 40, outliers: int = 25, seed: int = 0) -> np.ndarray:
    """A gently curved, slightly noisy sheet of n_side^2 points 1 cm apart, and stray points above it."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2) * 0.01
    sheet = np.c_[grid, 0.05 * np.sin(3 * grid[:, 0]) + 2e-4 * rng.standard_normal(len(grid))]
    stray = np.c_[rng.uniform(0, n_side * 0.01, (outliers, 2)), rng.uniform(0.08, 0.4, outliers)]
    return np.r_[sheet, stray] + OFFSETS + [3.21, 7.65, 0]


def make_las(path: Path, version: str, point_format: int, seed: int = 0) -> laspy.LasData:
    """A LAS/LAZ file (by ``path``'s suffix) of ``cloud()`` with every attribute of its point format drawn
    at random, two extra-bytes dimensions, a VLR and, in LAS 1.4, an EVLR; returns what was written."""
    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(version=version, point_format=point_format)
    header.scales, header.offsets = SCALES, OFFSETS
    header.add_extra_dims([laspy.ExtraBytesParams("reflectance", np.float32),
                           laspy.ExtraBytesParams("echo_width", np.uint16)])
    header.vlrs.append(laspy.VLR("pcfilter_test", 42, "a user VLR", b"kept as it was"))
    xyz = cloud(seed=seed)
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    n = len(xyz)
    names = set(las.point_format.dimension_names)
    las.intensity = rng.integers(0, 65536, n)
    las.number_of_returns = rng.integers(1, 5, n)
    las.return_number = np.minimum(rng.integers(1, 5, n), las.number_of_returns)
    las.classification = rng.choice([1, 2, 5, 6], n)
    las.synthetic = rng.integers(0, 2, n).astype(bool)
    las.user_data = rng.integers(0, 256, n)
    las.point_source_id = rng.integers(0, 65536, n)
    if "gps_time" in names:
        las.gps_time = 3.5e8 + np.cumsum(rng.uniform(0, 1e-4, n))
    if "red" in names:
        las.red, las.green, las.blue = (rng.integers(0, 65536, n) for _ in range(3))
    las.reflectance = rng.standard_normal(n).astype(np.float32)
    las.echo_width = rng.integers(0, 65536, n)
    if version == "1.4":
        las.evlrs = VLRList([laspy.VLR("pcfilter_test", 43, "an EVLR", b"after the points")])
    las.write(path)
    return laspy.read(path)


def filter_(*argv: str, capsys=None) -> str:
    code = main(["filter", *map(str, argv), "--quiet"])
    out, err = capsys.readouterr() if capsys else ("", "")
    assert code == 0, err
    return out


def rows_of(points: laspy.LasData) -> np.ndarray:
    """Each point's raw record as bytes: records compared bit for bit."""
    array = points.points.array
    return array.view(np.dtype((np.void, array.dtype.itemsize))).reshape(-1)


def kept_mask(source: laspy.LasData, out: laspy.LasData) -> np.ndarray:
    """Which of the source's points ``out`` holds (raw records equal), checking they keep their order."""
    index = {row.tobytes(): i for i, row in enumerate(rows_of(source))}
    found = np.array([index[row.tobytes()] for row in rows_of(out)], int)
    assert (np.diff(found) > 0).all()  # the source's order, each once
    mask = np.zeros(len(source.points), bool)
    mask[found] = True
    return mask


def same_header(source: laspy.LasData, out: laspy.LasData) -> None:
    assert str(out.header.version) == str(source.header.version)
    assert out.header.point_format.id == source.header.point_format.id
    assert list(out.point_format.dimension_names) == list(source.point_format.dimension_names)
    assert (out.header.scales == source.header.scales).all() and (out.header.offsets == source.header.offsets).all()
    mine = [(v.user_id, v.record_id, v.record_data) for v in out.header.vlrs if v.user_id == "pcfilter_test"]
    assert mine == [("pcfilter_test", 42, b"kept as it was")]
    evlrs = [(v.user_id, v.record_id, v.record_data) for v in out.header.evlrs or []]
    assert evlrs == [(v.user_id, v.record_id, v.record_data) for v in source.header.evlrs or []]
    assert len(evlrs) == (str(source.header.version) == "1.4")


FORMATS = [("1.2", 1, ".las"), ("1.2", 3, ".laz"), ("1.4", 6, ".laz"), ("1.4", 7, ".las")]


METHODS = {"sor": ("--method", "sor"), "neighbour_filter": ("--model", "neighbours")}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("version", "point_format", "suffix"), FORMATS,
                         ids=[f"las{v}-format{f}{s}" for v, f, s in FORMATS])
def test_kept_points_keep_every_attribute_and_classify_marks_exactly_the_removed_points(
        version, point_format, suffix, method, tmp_path, capsys):
    source = make_las(tmp_path / f"in{suffix}", version, point_format)
    out_suffix = ".las" if suffix == ".laz" else ".laz"  # LAS to LAZ and back: each way once
    said = filter_(tmp_path / f"in{suffix}", "-o", tmp_path / f"kept{out_suffix}", "--removed",
                   tmp_path / f"removed{out_suffix}", *METHODS[method], capsys=capsys)
    kept, removed = laspy.read(tmp_path / f"kept{out_suffix}"), laspy.read(tmp_path / f"removed{out_suffix}")
    keep = kept_mask(source, kept)
    assert (rows_of(removed) == rows_of(source)[~keep]).all()  # the rest, bit for bit, in order
    assert 0 < (~keep).sum() < 0.1 * len(keep) and (~keep[-25:]).sum() >= 15  # mostly the stray points go
    assert f"{method}: kept {keep.sum()} of {len(keep)} points, removed {(~keep).sum()}" in said
    for out in (kept, removed):
        same_header(source, out)
    assert kept.header.point_count == keep.sum()
    assert np.allclose(kept.header.mins, [kept.x.min(), kept.y.min(), kept.z.min()])

    said = filter_(tmp_path / f"in{suffix}", "-o", tmp_path / f"all{out_suffix}", *METHODS[method], "--classify",
                   capsys=capsys)
    assert f"classified {(~keep).sum()} (" in said and "as noise (ASPRS class 7)" in said
    every = laspy.read(tmp_path / f"all{out_suffix}")
    same_header(source, every)
    assert len(every.points) == len(source.points)
    assert (np.asarray(every.classification) == NOISE_CLASS).tolist() == (~keep).tolist()  # classes 1,2,5,6 before
    for name in source.point_format.dimension_names:  # everything else as it was
        if name != "classification":
            assert np.array_equal(np.asarray(every[name]), np.asarray(source[name])), name
    assert np.array_equal(np.asarray(every.classification)[keep], np.asarray(source.classification)[keep])


def test_the_neighbour_filter_streams_in_small_chunks_and_tiles_with_the_same_result(tmp_path, capsys, monkeypatch):
    source = make_las(tmp_path / "in.laz", "1.4", 7, seed=1)
    filter_(tmp_path / "in.laz", "-o", tmp_path / "one.laz", "--scores", tmp_path / "scores.las", "--model",
            "neighbours", capsys=capsys)
    monkeypatch.setattr(lidar, "CHUNK_POINTS", 333)  # five chunks per reading; tiles of 1000 points
    filter_(tmp_path / "in.laz", "-o", tmp_path / "chunked.laz", "--classify", "--model", "neighbours",
            "--tile-points", "1000", capsys=capsys)
    one, chunked = laspy.read(tmp_path / "one.laz"), laspy.read(tmp_path / "chunked.laz")
    keep = kept_mask(source, one)
    assert 0 < (~keep).sum() < 0.1 * len(keep)
    assert (np.asarray(chunked.classification) == NOISE_CLASS).tolist() == (~keep).tolist()
    scores = laspy.read(tmp_path / "scores.las")  # every point, its attributes, and P(keep) as extra bytes
    assert list(scores.point_format.extra_dimension_names) == ["reflectance", "echo_width", "keep_probability"]
    for name in source.point_format.dimension_names:
        assert np.array_equal(np.asarray(scores[name]), np.asarray(source[name])), name
    assert ((np.asarray(scores.keep_probability) >= 0.5) == keep).mean() > 0.98  # the filter's own threshold aside


def test_las_to_ply_and_ply_to_laz_round_trip_within_the_scale(tmp_path, capsys):
    make_las(tmp_path / "in.las", "1.2", 3)
    filter_(tmp_path / "in.las", "-o", tmp_path / "kept.ply", "--method", "sor", capsys=capsys)
    filter_(tmp_path / "in.las", "-o", tmp_path / "kept.las", "--method", "sor", capsys=capsys)
    ply, las = read_ply(tmp_path / "kept.ply"), laspy.read(tmp_path / "kept.las")
    assert ply["x"].dtype == np.float64  # LAS coordinates, exactly as X * scale + offset
    for axis in "xyz":
        assert np.array_equal(ply[axis], np.asarray(las[axis]))
    assert np.array_equal(ply["intensity"], np.asarray(las.intensity, np.float32))

    rng = np.random.default_rng(2)
    xyz = cloud(seed=2)
    intensity = rng.uniform(0, 1, len(xyz)).astype(np.float32)
    write_points(tmp_path / "c.ply", xyz, intensity)
    filter_(tmp_path / "c.ply", "-o", tmp_path / "c_kept.ply", "--method", "sor", capsys=capsys)
    filter_(tmp_path / "c.ply", "-o", tmp_path / "c_kept.laz", "--removed", tmp_path / "c_removed.laz", "--method",
            "sor", capsys=capsys)
    kept_ply, kept_laz = read_ply(tmp_path / "c_kept.ply"), laspy.read(tmp_path / "c_kept.laz")
    header = kept_laz.header
    assert str(header.version) == "1.4" and header.point_format.id == 6
    assert header.scales[0] <= 1e-4 and (header.offsets == np.floor(xyz.min(0) / 2 + xyz.max(0) / 2)).all()
    assert len(kept_laz.points) == len(kept_ply["x"])  # the same points kept
    for i, axis in enumerate("xyz"):
        assert np.abs(np.asarray(kept_laz[axis]) - kept_ply[axis]).max() <= header.scales[i] / 2 * (1 + 1e-6)
    assert np.array_equal(np.asarray(kept_laz[INTENSITY_DIMENSION]), kept_ply["intensity"])  # float kept exactly
    removed = laspy.read(tmp_path / "c_removed.laz")
    assert len(removed.points) + len(kept_laz.points) == len(xyz)
    # back to PLY: the float intensity comes back from its extra-bytes dimension
    filter_(tmp_path / "c_kept.laz", "-o", tmp_path / "again.ply", "--method", "sor", "--allow-empty",
            capsys=capsys)
    again = read_ply(tmp_path / "again.ply")
    assert set(again["intensity"].tolist()) <= set(intensity.tolist())


def test_a_classical_method_on_a_ply_writes_las_with_classify_and_scores(tmp_path, capsys):
    xyz = cloud(seed=5)
    write_points(tmp_path / "c.ply", xyz)  # read whole for sor: the in-memory path
    filter_(tmp_path / "c.ply", "-o", tmp_path / "kept.ply", "--method", "sor", capsys=capsys)
    said = filter_(tmp_path / "c.ply", "-o", tmp_path / "all.laz", "--scores", tmp_path / "scores.las", "--method",
                   "sor", "--classify", capsys=capsys)
    every, scores = laspy.read(tmp_path / "all.laz"), laspy.read(tmp_path / "scores.las")
    kept = read_ply(tmp_path / "kept.ply")
    noise = np.asarray(every.classification) == NOISE_CLASS
    assert len(every.points) == len(scores.points) == len(xyz) and (~noise).sum() == len(kept["x"])
    assert f"classified {noise.sum()} (" in said
    assert np.abs(np.asarray(every.x)[~noise] - kept["x"]).max() <= every.header.scales[0] / 2 * (1 + 1e-6)
    assert ((np.asarray(scores.keep_probability) < 0.5) == noise).all()  # sor's P(keep) is 0 or 1
    assert np.array_equal(np.asarray(scores.ply_intensity), np.zeros(len(xyz), np.float32))  # the PLY's, all 0


def test_xyz_in_and_las_out_with_classify(tmp_path, capsys):
    xyz = cloud(seed=3)
    (tmp_path / "c.xyz").write_text("".join(f"{x:.17g} {y:.17g} {z:.17g}\n" for x, y, z in xyz.tolist()))
    said = filter_(tmp_path / "c.xyz", "-o", tmp_path / "all.las", "--model", "neighbours", "--classify",
                   capsys=capsys)
    every = laspy.read(tmp_path / "all.las")
    assert len(every.points) == len(xyz)
    noise = int((np.asarray(every.classification) == NOISE_CLASS).sum())
    assert f"classified {noise} (" in said and 0 < noise < 0.1 * len(xyz)
    assert set(np.unique(every.classification).tolist()) == {0, NOISE_CLASS}  # 0: never classified
    assert INTENSITY_DIMENSION not in every.point_format.dimension_names  # an .xyz has no intensity
    assert np.abs(every.x - xyz[:, 0]).max() <= every.header.scales[0] / 2 * (1 + 1e-6)


def test_chunked_reading_and_writing_give_the_records_of_one_reading(tmp_path):
    source = make_las(tmp_path / "in.laz", "1.4", 6, seed=4)
    stream = open_stream(tmp_path / "in.laz")
    chunks = list(stream.chunks(size=333))
    assert [len(c["xyz"]) for c in chunks] == [333] * 4 + [len(source.points) - 4 * 333]
    whole = next(iter(stream.chunks(size=10**7)))
    joined = np.concatenate([c["records"].array for c in chunks])
    assert joined.tobytes() == whole["records"].array.tobytes() == source.points.array.tobytes()
    assert np.array_equal(np.concatenate([c["xyz"] for c in chunks]), np.c_[source.x, source.y, source.z])
    for suffix in (".las", ".laz"):  # written back chunk by chunk: the same records, the same header
        target = tmp_path / f"copy{suffix}"
        with CloudWriter(target, len(source.points), np.float64, header=lidar_header(stream.header)) as writer:
            for chunk in chunks:
                writer.write(chunk["xyz"], chunk["intensity"], records=chunk["records"])
        copy = laspy.read(target)
        assert copy.points.array.tobytes() == source.points.array.tobytes()
        assert (copy.header.mins == source.header.mins).all() and copy.header.point_count == len(source.points)


@pytest.mark.parametrize(("lo", "hi"), [((0, 0, 0), (1, 1, 1)), ((512000.1, 4.1e6, 10), (513000.7, 4.101e6, 95)),
                                        ((-5e4, -5e4, 0), (5e4, 5e4, 1)), ((3, 3, 3), (3, 3, 3)),
                                        ((-1e-160, -2e-160, 0), (3e-160, 1e-160, 1e-161))])
def test_scales_from_the_extent_keep_points_within_half_a_step(lo, hi):
    scales, offsets = extent_scales(lo, hi)
    rng = np.random.default_rng(0)
    points = rng.uniform(lo, hi, (1000, 3))
    points[:2] = lo, hi
    raw = np.round((points - offsets) / scales)
    assert np.abs(raw).max() <= 2**30
    assert np.abs(raw * scales + offsets - points).max() <= scales[0] / 2 * (1 + 1e-6)
    assert scales[0] <= 1e-4  # 0.1 mm or finer for clouds in metres up to 100 km wide
    assert (offsets == np.floor(offsets)).all()


def test_a_las_file_that_is_not_whole_is_refused_on_opening(tmp_path):
    make_las(tmp_path / "in.las", "1.4", 6)
    data = (tmp_path / "in.las").read_bytes()
    (tmp_path / "cut.las").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="shorter than the header says"):
        open_lidar(tmp_path / "cut.las")
    (tmp_path / "text.las").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="is not a LAS file"):
        open_lidar(tmp_path / "text.las")


def test_a_folder_of_las_and_laz_files_keeps_their_formats_and_classify_refuses_other_formats(tmp_path, capsys):
    folder = tmp_path / "tiles"
    folder.mkdir()
    sources = {"a.las": make_las(folder / "a.las", "1.4", 6), "b.laz": make_las(folder / "b.laz", "1.2", 1, seed=1)}
    said = filter_(folder, "-o", tmp_path / "out", "--model", "neighbours", "--classify", capsys=capsys)
    assert "2 of 2 files filtered" in said
    for name, source in sources.items():
        out = laspy.read(tmp_path / "out" / name)  # the input's own format, LAZ compressed
        assert out.header.are_points_compressed == name.endswith(".laz")
        same_header(source, out)
        assert len(out.points) == len(source.points) and 0 < (np.asarray(out.classification) == NOISE_CLASS).sum()
    write_points(folder / "c.ply", cloud())
    assert main(["filter", str(folder), "-o", str(tmp_path / "out2"), "--classify", "--quiet"]) == 1
    assert "--classify marks noise in LAS files" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_a_cloud_too_small_for_a_normal_scale_is_refused():
    """Coordinates of 1e-300 would need a step of 1e-309, a subnormal double: refused, not rounded to 0."""
    with pytest.raises(ValueError, match="LAS cannot hold this cloud"):
        extent_scales((0, 0, 0), (1e-300, 1e-300, 1e-300))


def _patch(path: Path, at: int, value: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + len(value)] = value
    path.write_bytes(bytes(data))


def test_las_versions_read_and_written(tmp_path):
    """LAS 1.0 (laspy reads its header as 1.1's; it writes no 1.0) is read and written as 1.2; a
    version pcfilter does not know is refused by its number, before laspy reads the header."""
    source = make_las(tmp_path / "in.las", "1.2", 1)
    _patch(tmp_path / "in.las", 25, b"\x00")
    stream = open_lidar(tmp_path / "in.las")
    assert (stream.header.version.major, stream.header.version.minor) == (1, 0)
    header = lidar_header(stream.header, scalars=["keep_probability"])
    assert str(header.version) == "1.2"
    with CloudWriter(tmp_path / "out.las", len(source.points), np.float64, ["keep_probability"], header) as writer:
        for chunk in stream.chunks():
            writer.write(chunk["xyz"], records=chunk["records"], keep_probability=np.zeros(len(chunk["xyz"])))
    assert np.array_equal(laspy.read(tmp_path / "out.las").x, source.x)
    for version in (b"\x09\x09", b"\x01\x07", b"\x02\x00"):
        _patch(tmp_path / "in.las", 24, version)
        with pytest.raises(ValueError, match=f"LAS version {version[0]}.{version[1]}, and pcfilter reads LAS 1.0 to "
                           "1.4"):
            open_lidar(tmp_path / "in.las")


@pytest.mark.parametrize(("version", "point_format"), [("1.2", 1), ("1.4", 6)])
def test_a_las_header_counting_fewer_points_than_its_data_is_refused(tmp_path, version, point_format):
    """The count of a LAS 1.2 header (offset 107) or a LAS 1.4 one (offset 247, before its EVLR)."""
    make_las(tmp_path / "in.las", version, point_format)
    n = len(cloud())
    at, size = (107, 4) if version == "1.2" else (247, 8)
    _patch(tmp_path / "in.las", at, (n - 1).to_bytes(size, "little"))
    with pytest.raises(ValueError, match=f"its header counts {n - 1} points, but its point data .* holds {n};"):
        open_lidar(tmp_path / "in.las")


@pytest.mark.parametrize("point_format", [1, 6])
def test_a_laz_header_counting_fewer_points_than_its_chunks_is_refused(tmp_path, point_format):
    """Three chunks of LAZ's 50,000 points: a count that leaves a chunk empty is refused for every point
    format, and one off by a point within the last chunk where the chunk says how many it holds
    (the layered formats 6 to 10). The true count passes."""
    n = 120_000
    header = laspy.LasHeader(version="1.4" if point_format >= 6 else "1.2", point_format=point_format)
    header.scales, header.offsets = [1e-3] * 3, [0, 0, 0]
    las = laspy.LasData(header)
    xyz = np.random.default_rng(0).uniform(0, 10, (n, 3))
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.write(tmp_path / "in.laz")
    assert open_lidar(tmp_path / "in.laz").header.point_count == n
    at, size = (107, 4) if point_format < 6 else (247, 8)
    wrong = [90_000] + ([n - 1, n + 1] if point_format >= 6 else [])
    for count in wrong:
        _patch(tmp_path / "in.laz", at, count.to_bytes(size, "little"))
        with pytest.raises(ValueError, match=f"its header counts {count} points, but its LAZ data holds"):
            open_lidar(tmp_path / "in.laz")


def test_a_las_file_marked_compressed_is_refused_as_no_laz(tmp_path):
    make_las(tmp_path / "in.las", "1.4", 6)
    _patch(tmp_path / "in.las", 104, bytes([6 | 0x80]))
    with pytest.raises(ValueError, match="marks the points as compressed \\(LAZ\\), but the file holds no LASzip "
                       "record"):
        open_lidar(tmp_path / "in.las")


def test_scores_into_a_las_input_that_has_them_already(tmp_path):
    """A keep_probability dimension of the input is refused unless --overwrite; one that is no float is
    refused always (probabilities would be cut to whole numbers)."""
    for kind, text in ((np.float32, "pass --overwrite"), (np.uint8, "of type uint8, which cannot hold")):
        header = laspy.LasHeader(version="1.4", point_format=6)
        header.add_extra_dims([laspy.ExtraBytesParams("keep_probability", kind)])
        las = laspy.LasData(header)
        las.x, las.y, las.z = np.zeros((3, 5))
        las.write(tmp_path / "in.las")
        with pytest.raises(ValueError, match=text):
            lidar.check_scores_dimension(tmp_path / "in.las", "--scores s.las", False)
        if kind == np.float32:
            lidar.check_scores_dimension(tmp_path / "in.las", "--scores s.las", True)  # replaced, as asked
        else:
            with pytest.raises(ValueError, match=text):
                lidar.check_scores_dimension(tmp_path / "in.las", "--scores s.las", True)
