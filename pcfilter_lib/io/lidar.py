"""LiDAR point clouds in ASPRS LAS and LAZ files, read and written chunk by chunk with laspy (LAZ through
its lazrs backend), so that a file larger than memory passes through.

* ``open_lidar`` checks a file before any point is read: that it is LAS at all, of a version read (LAS
  1.0 to 1.4), that its point format is one LAS defines (0 to 10), that it holds points, that it is not
  cut short, that its data holds as many points as its header counts, and that a file marked as
  compressed is LAZ. It returns a
  ``LidarStream``, whose ``chunks`` yield the coordinates (float64, ``X * scale + offset``), the
  intensity and the point records themselves, bit for bit as they are in the file.
* ``LidarWriter`` writes chunks of records under a header made by ``lidar_header``: for a LAS/LAZ
  input, a copy of the input's header (point format, version, scales, offsets, VLRs and EVLRs, so
  every attribute of a point, extra bytes included, is written as it was read; LAS 1.0, which laspy
  does not write, becomes 1.2, the same layout); for any other
  cloud, LAS 1.4 point format 6 with scales and offsets chosen from the cloud's extent
  (``extent_scales``). Scalars such as ``keep_probability`` become float32 extra-bytes dimensions,
  and points can be marked as noise: ASPRS class 7 (low point), as PDAL's outlier filter marks them.

``io.clouds`` opens these through its own entry points (``open_stream``, ``CloudWriter``), so the
command line treats a LAS file like any other streamed cloud.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import laspy
import lazrs  # laspy's LAZ backend, for the chunk table of a LAZ file
import numpy as np

from pcfilter_lib.io.files import CloudError

LIDAR_SUFFIXES = (".las", ".laz")
CHUNK_POINTS = 1 << 20  # points per chunk read; read when chunks() is called, so a test can make it small
NOISE_CLASS = 7  # ASPRS classification "low point (noise)"
# Another cloud's float intensity (a PLY scalar) is kept exactly in this float32 extra-bytes dimension:
# LAS's own intensity is a 16-bit whole number.
INTENSITY_DIMENSION = "ply_intensity"
# The coordinate step of a cloud that was not LAS and whose points all coincide (a nanometre in metres); a
# cloud with an extent gets the finest power of ten that holds it, however small (``extent_scales``).
FINEST_SCALE = 1e-9
# A scale below this would make ``X * scale`` a subnormal double, which loses digits: such clouds are refused.
SMALLEST_SCALE = 1e-290
READ_VERSIONS = ((1, 0), (1, 1), (1, 2), (1, 3), (1, 4))  # the LAS versions read (their headers laspy reads)
# laspy writes no LAS 1.0 file; 1.0 and 1.1 share 1.2's header and its point formats 0 and 1, so an output
# of a LAS 1.0 input gets version 1.2.
WRITE_VERSION_OF = {(1, 0): "1.2"}
SCORES_DIMENSION = "keep_probability"  # the extra-bytes dimension that --scores writes
_VERSION_AT = 24  # byte offsets of the version's major and minor numbers in every LAS header
_HEADER_BYTES = 375  # the LAS 1.4 public header block, the largest of the versions
_POINT_FORMAT_AT = 104  # byte offset of the point data record format in every LAS version


@dataclass
class LidarStream:
    """A LAS or LAZ file read chunk by chunk; ``open_lidar`` checks it first and ``chunks`` reads
    it again each time.

    Attributes:
        path: the file.
        header: its laspy header (point format, version, scales, offsets, VLRs, EVLRs).
        precision: float64, in which LAS coordinates (``X * scale + offset``) are given.
    """

    path: Path
    header: laspy.LasHeader
    precision: np.dtype = np.dtype(np.float64)

    def chunks(self, size: int | None = None) -> Iterator[dict]:
        """Yield dicts of ``xyz`` ((n, 3) float64), ``intensity`` ((n,) float32: LAS's intensity, or
        ``INTENSITY_DIMENSION`` where the file has it) and ``records`` (the points as laspy read them),
        ``size`` points at a time (default ``CHUNK_POINTS``).

        Raises:
            CloudError: the point data cannot be decompressed or is shorter than the header says.
        """
        size, count, done = size or CHUNK_POINTS, self.header.point_count, 0
        try:
            with laspy.open(self.path) as reader:
                while done < count:
                    records = reader.read_points(min(size, count - done))
                    if len(records) == 0:
                        break
                    done += len(records)
                    yield lidar_chunk(records)
        except (laspy.errors.LaspyException, OSError, RuntimeError, ValueError) as error:
            reason = str(error).strip() or type(error).__name__
            raise CloudError(f"{self.path}: its point data cannot be read ({reason}); the file is damaged or cut "
                             "short: copy or export it again") from error
        if done < count:
            raise CloudError(f"{self.path}: the point data is shorter than the header says ({done} of {count} points "
                             "read); the file is cut short: copy or export it again")

    def points(self, size: int | None = None) -> Iterator[np.ndarray]:
        """Yield the coordinates only, chunk by chunk."""
        for chunk in self.chunks(size):
            yield chunk["xyz"]


def lidar_chunk(records: laspy.ScaleAwarePointRecord) -> dict:
    """The ``chunks`` dict of a record: xyz (float64), intensity (float32) and the records."""
    xyz = np.stack([np.asarray(records.x), np.asarray(records.y), np.asarray(records.z)], -1)
    names = records.point_format.dimension_names
    intensity = records[INTENSITY_DIMENSION] if INTENSITY_DIMENSION in names else records.intensity
    return {"xyz": xyz, "intensity": np.asarray(intensity, np.float32), "records": records}


def _bad(path: Path, what: str) -> CloudError:
    return CloudError(f"{path}: {what}")


def open_lidar(path: str | os.PathLike) -> LidarStream:
    """A ``LidarStream`` for a ``.las`` or ``.laz`` file, once its header has been checked; no point is
    read.

    Raises:
        FileNotFoundError: there is no such file.
        CloudError: it is not a LAS file, its header is cut short or of a version not read, its point
            format is not one LAS defines, it holds no points, its point data is shorter or longer than
            the header says (LAS; LAZ where its chunk table says), its header marks it compressed but it
            is no LAZ file, or its LAZ chunk table lies beyond the file's end (a LAZ file cut short).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(_HEADER_BYTES)
    if not head.startswith(b"LASF"):
        raise CloudError(f"{path} is not a LAS file (it does not start with 'LASF'); give a LAS or LAZ file, or name "
                         "it for its real format (.ply, .xyz, .pcd)")
    if len(head) <= _POINT_FORMAT_AT:
        raise _bad(path, f"the LAS header is cut short ({len(head)} bytes); the file is damaged: copy or export it "
                   "again")
    version = (head[_VERSION_AT], head[_VERSION_AT + 1])
    if version not in READ_VERSIONS:
        raise _bad(path, f"its header says LAS version {version[0]}.{version[1]}, and pcfilter reads LAS "
                   f"{version_range()}; the file is damaged or of another version: export it as LAS 1.2 to 1.4")
    point_format = head[_POINT_FORMAT_AT] & 0x3F  # the two high bits flag LAZ compression
    if point_format > 10:
        raise _bad(path, f"point format {point_format} is not one LAS defines (0 to 10); the file is damaged or "
                   "not LAS: export it again as LAS 1.2 to 1.4")
    try:
        with open(path, "rb") as file:
            header = laspy.LasHeader.read_from(file, read_evlrs=True)
    except (laspy.errors.LaspyException, OSError, ValueError, EOFError) as error:
        raise _bad(path, f"the LAS header cannot be read ({str(error).strip() or type(error).__name__}); the file "
                   "is damaged or not LAS: export it again") from error
    if header.point_count == 0:
        raise _bad(path, "the LAS file holds no points (its header says 0); there is nothing to filter")
    if not np.all(np.isfinite(header.scales)) or not np.all(header.scales != 0) or \
            not np.all(np.isfinite(header.offsets)):
        raise _bad(path, f"the LAS header's scales {list(header.scales)} or offsets {list(header.offsets)} are not "
                   "finite non-zero numbers; the file is damaged: export it again")
    start = header.offset_to_point_data
    if header.are_points_compressed:
        _check_laz(path, header, size)
    else:
        record = header.point_format.size
        need = start + header.point_count * record
        if size < need:
            have = max(size - start, 0) // record
            raise _bad(path, f"the point data is shorter than the header says ({have} of {header.point_count} "
                       "points); the file is cut short: copy or export it again")
        end = _end_of_points(header, size)
        if (end - start) // record > header.point_count:
            raise _bad(path, f"its header counts {header.point_count} points, but its point data (bytes {start} to "
                       f"{end}) holds {(end - start) // record}; the header's point count is wrong or points were "
                       "appended: export the file again")
    return LidarStream(path, header)


def version_range() -> str:
    """The LAS versions read, in words (``READ_VERSIONS``): '1.0 to 1.4'."""
    (a, b), (c, d) = READ_VERSIONS[0], READ_VERSIONS[-1]
    return f"{a}.{b} to {c}.{d}"


def _end_of_points(header: laspy.LasHeader, size: int) -> int:
    """The byte at which the point data of an uncompressed LAS file ends: the start of what may follow
    it (LAS 1.3's waveform packets stored in the file, LAS 1.4's extended VLRs), or the file's end."""
    starts = [size]
    if header.version.minor >= 3 and header.global_encoding.waveform_data_packets_internal:
        starts.append(header.start_of_waveform_data_packet_record)
    if header.version.minor >= 4 and header.number_of_evlrs:
        starts.append(header.start_of_first_evlr)
    return min(s for s in starts if s >= header.offset_to_point_data)


def _check_laz(path: Path, header: laspy.LasHeader, size: int) -> None:
    """Refuse a file whose header marks its points compressed but that is no LAZ file (no LASzip record),
    whose chunk table lies outside the file (cut short), or whose chunks hold more points than its
    header counts (read from the chunk table where its chunks have a fixed size)."""
    start = header.offset_to_point_data
    laszip = [vlr for vlr in header.vlrs if getattr(vlr, "user_id", "") == "laszip encoded"
              and getattr(vlr, "record_id", None) == 22204]
    if not laszip:
        raise _bad(path, "its header marks the points as compressed (LAZ), but the file holds no LASzip record, so "
                   "it is not LAZ; the file is damaged (its point format byte) or not LAS: export it again")
    with open(path, "rb") as file:
        file.seek(start)
        table = int.from_bytes(file.read(8), "little", signed=True)
    if size < start + 8 or table > size or 0 <= table < start + 8:
        raise _bad(path, f"the LAZ file is cut short or damaged: its chunk table should lie at byte {table}, and "
                   f"the file has {size} bytes; copy or export it again")
    if table < 0:  # no chunk table (a LAZ written as a stream): nothing more to compare
        return
    held = _laz_points(path, header, laszip[0].record_data, table)
    if held is not None and not held[0] <= header.point_count <= held[1]:
        many = held[0] if held[0] == held[1] else f"at least {held[0]}" if header.point_count < held[0] else \
            f"at most {held[1]}"
        raise _bad(path, f"its header counts {header.point_count} points, but its LAZ data holds {many}; the "
                   "header's point count is wrong or the file is damaged: export the file again")


def _laz_points(path: Path, header: laspy.LasHeader, record_data: bytes, table: int) -> tuple[int, int] | None:
    """The least and the most points the LAZ data can hold, from its chunk table (read at byte ``table``):
    variable-size chunks list their points; fixed-size chunks hold the chunk size each but the last,
    which holds 1 to the chunk size, or, in the layered compression of point formats 6 to 10, the
    number that follows its first point. None where the table cannot be read (reading the points then
    says what is wrong)."""
    try:
        vlr = lazrs.LazVlr(record_data)
        with open(path, "rb") as file:
            file.seek(table)
            chunks = lazrs.read_chunk_table_only(file, vlr)
            if not chunks:
                return None
            if vlr.uses_variable_size_chunks():
                held = int(sum(points for points, _ in chunks))
                return held, held
            size, before = vlr.chunk_size(), (len(chunks) - 1) * vlr.chunk_size()
            if header.point_format.id < 6:
                return before + 1, before + size
            file.seek(header.offset_to_point_data + 8 + sum(length for _, length in chunks[:-1]) + vlr.item_size())
            last = int.from_bytes(file.read(4), "little")
    except Exception:  # noqa: BLE001  (lazrs raises its own errors, and OSError, for what it cannot read)
        return None
    return (before + last, before + last) if 0 < last <= size else None


def check_scores_dimension(path: str | os.PathLike, option: str, overwrite: bool) -> None:
    """Refuse to write ``SCORES_DIMENSION`` into the records of the LAS input ``path`` when they already
    have one (an earlier run's scores, or another program's), unless ``overwrite``: its values would be
    replaced. A damaged input is left for ``open_lidar`` to report."""
    try:
        header = open_lidar(path).header
    except (CloudError, OSError):
        return
    if SCORES_DIMENSION not in header.point_format.dimension_names:
        return
    kind = header.point_format.dimension_by_name(SCORES_DIMENSION).dtype
    if kind is None or kind.kind != "f":
        raise CloudError(f"{option}: the points of {path} already have a {SCORES_DIMENSION} dimension of type "
                         f"{kind}, which cannot hold probabilities; write the scores to a .ply")
    if not overwrite:
        raise CloudError(f"{option}: the points of {path} already have a {SCORES_DIMENSION} dimension, whose values "
                         "these scores would replace; pass --overwrite to replace them, or write the scores to a "
                         ".ply")


def extent_scales(lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scales and offsets of LAS coordinates for a cloud whose finite points lie in [lo, hi].

    The offset of each axis is the whole number at or below the middle of the extent; the scale, the
    same on every axis, is the finest power of ten that keeps every ``X = (x - offset) / scale`` within
    ±2^30 (half the int32 range), however small (a cloud within 1e-160 of the origin gets 1e-169;
    ``FINEST_SCALE`` only where every point coincides); a CloudError where that step would not be a
    normal double. A cloud in metres that spans up to 100 km gets 0.1 mm or finer (1 km: 1 µm), and
    every point is written within half a scale step of its coordinates; only a cloud wider than about
    200,000 units gets a step above 1e-4.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"the extent {lo} to {hi} is not finite")
    offsets = np.floor((lo + hi) / 2)
    reach = float(np.max(np.maximum(hi - offsets, offsets - lo)))
    if reach <= 0:
        return np.full(3, FINEST_SCALE), offsets
    scale = 10.0 ** math.ceil(math.log10(reach / 2**30))
    if not SMALLEST_SCALE <= scale < math.inf:
        raise CloudError(f"LAS cannot hold this cloud: its coordinates lie within ±{reach:.3g} of {list(offsets)}, "
                         f"which would need a coordinate step of {scale:.3g}; scale the cloud (e.g. to metres) or "
                         "write it as .ply")
    return np.full(3, scale), offsets


def lidar_header(like: laspy.LasHeader | None = None, extent: tuple | None = None, intensity: bool = False,
                 scalars: Sequence[str] = ()) -> laspy.LasHeader:
    """The header of a LAS/LAZ output.

    Args:
        like: the header of a LAS/LAZ input, copied whole (point format, version, scales, offsets,
            VLRs, EVLRs); or None for a cloud of another format.
        extent: (lo, hi) of the cloud's finite points, when ``like`` is None: scales and offsets
            from ``extent_scales``, LAS 1.4 point format 6.
        intensity: whether the other format's points carry a float intensity, kept in the float32
            extra-bytes dimension ``INTENSITY_DIMENSION``.
        scalars: names of float32 extra-bytes dimensions to add (e.g. ``keep_probability``), unless
            the copied header already has them.
    """
    if like is not None:
        header = like.copy()
        version = (header.version.major, header.version.minor)
        if version in WRITE_VERSION_OF:
            header.version = laspy.header.Version.from_str(WRITE_VERSION_OF[version])
        extra = list(scalars)
    else:
        if extent is None:
            raise ValueError("a LAS header for a cloud of another format needs the cloud's extent")
        header = laspy.LasHeader(version="1.4", point_format=6)
        header.scales, header.offsets = extent_scales(*extent)
        header.generating_software = "pcfilter"
        extra = [INTENSITY_DIMENSION] * intensity + list(scalars)
    have = set(header.point_format.dimension_names)
    header.add_extra_dims([laspy.ExtraBytesParams(name=name, type=np.float32) for name in extra if name not in have])
    return header


class LidarWriter:
    """Points appended chunk by chunk to an open binary file as LAS, or LAZ when ``compress``, under
    ``header`` (``lidar_header``); ``close`` writes the header's point count, bounds and EVLRs. The
    caller opens and closes the file (``io.clouds.CloudWriter`` does, atomically)."""

    def __init__(self, file: BinaryIO, header: laspy.LasHeader, compress: bool):
        self.header = header
        self._writer = laspy.LasWriter(file, header, do_compress=compress, closefd=False)

    def write(self, xyz: np.ndarray, intensity: np.ndarray | None = None,
              records: laspy.ScaleAwarePointRecord | None = None, noise: np.ndarray | None = None,
              **scalars: np.ndarray) -> None:
        """Append points.

        Args:
            xyz: (n, 3) coordinates, written (rounded to the header's scale) where ``records`` is None.
            intensity: (n,) float intensities of another format's points, or None.
            records: the points' LAS records (from a file with this header's point format, scales and
                offsets), written bit for bit; None for points of another format.
            noise: (n,) bool, the points whose classification becomes ``NOISE_CLASS``; None for none.
            scalars: (n,) values of the header's extra-bytes dimensions, by name.
        """
        n = len(xyz) if records is None else len(records)
        if records is not None and not scalars and records.point_format == self.header.point_format:
            out = records if noise is None else records[np.arange(n)]  # a copy only when it is changed
        else:
            out = laspy.ScaleAwarePointRecord.zeros(n, header=self.header)
            if records is not None:  # the raw fields: integer coordinates, packed bits, extra bytes
                for name in records.array.dtype.names:
                    out.array[name] = records.array[name]
            else:
                xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
                out.x, out.y, out.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
                if intensity is not None and INTENSITY_DIMENSION in out.point_format.dimension_names:
                    out[INTENSITY_DIMENSION] = intensity
            for name, values in scalars.items():
                out[name] = values
        if noise is not None and np.any(noise):
            classes = np.array(out.classification)
            classes[np.asarray(noise, bool)] = NOISE_CLASS
            out.classification = classes
        self._writer.write_points(out)

    def close(self) -> None:
        """Write the final header (point count, bounds, returns) and the EVLRs of a copied header."""
        evlrs = self.header.evlrs
        if evlrs and self.header.version.minor >= 4:
            self._writer.write_evlrs(evlrs)
        self._writer.close()
