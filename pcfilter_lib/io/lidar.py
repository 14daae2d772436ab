"""LiDAR point clouds in ASPRS LAS and LAZ files, read and written chunk by chunk with laspy (LAZ through
its lazrs backend), so that a file larger than memory passes through.

* ``open_lidar`` checks a file before any point is read: that it is LAS at all, that its point format
  is one LAS defines (0 to 10), that it holds points, and that it is not cut short. It returns a
  ``LidarStream``, whose ``chunks`` yield the coordinates (float64, ``X * scale + offset``), the
  intensity and the point records themselves, bit for bit as they are in the file.
* ``LidarWriter`` writes chunks of records under a header made by ``lidar_header``: for a LAS/LAZ
  input, a copy of the input's header (point format, version, scales, offsets, VLRs and EVLRs, so
  every attribute of a point, extra bytes included, is written as it was read); for any other
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
import numpy as np

from pcfilter_lib.io.files import CloudError

LIDAR_SUFFIXES = (".las", ".laz")
CHUNK_POINTS = 1 << 20  # points per chunk read; read when chunks() is called, so a test can make it small
NOISE_CLASS = 7  # ASPRS classification "low point (noise)"
# Another cloud's float intensity (a PLY scalar) is kept exactly in this float32 extra-bytes dimension:
# LAS's own intensity is a 16-bit whole number.
INTENSITY_DIMENSION = "ply_intensity"
FINEST_SCALE = 1e-9  # the finest coordinate step chosen for a cloud that was not LAS (a nanometre in metres)
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
        CloudError: it is not a LAS file, its header is cut short, its point format is not one LAS
            defines, it holds no points, or its point data is shorter than the header says (LAS) or
            its LAZ chunk table lies beyond the file's end (a LAZ file cut short).
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
        with open(path, "rb") as file:
            file.seek(start)
            table = int.from_bytes(file.read(8), "little", signed=True)
        if size < start + 8 or table > size:
            raise _bad(path, f"the LAZ file is cut short: its chunk table lies at byte {table} of a file of {size} "
                       "bytes; copy or export it again")
    else:
        need = start + header.point_count * header.point_format.size
        if size < need:
            have = max(size - start, 0) // header.point_format.size
            raise _bad(path, f"the point data is shorter than the header says ({have} of {header.point_count} "
                       "points); the file is cut short: copy or export it again")
    return LidarStream(path, header)


def extent_scales(lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Scales and offsets of LAS coordinates for a cloud whose finite points lie in [lo, hi].

    The offset of each axis is the whole number at or below the middle of the extent; the scale, the
    same on every axis, is the finest power of ten that keeps every ``X = (x - offset) / scale`` within
    ±2^30 (half the int32 range), but never finer than ``FINEST_SCALE``. A cloud in metres that spans
    up to 100 km gets 0.1 mm or finer (1 km: 1 µm), and every point is written within half a scale
    step of its coordinates; only a cloud wider than about 200,000 units gets a step above 1e-4.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"the extent {lo} to {hi} is not finite")
    offsets = np.floor((lo + hi) / 2)
    reach = float(np.max(np.maximum(hi - offsets, offsets - lo)))
    scale = FINEST_SCALE if reach <= 0 else max(10.0 ** math.ceil(math.log10(reach / 2**30)), FINEST_SCALE)
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
