"""Bad input, round 3: the rows of the commands cases (run by ``test_bad_input_round3.py``): damaged
model files, manifests that are no manifests, NaN rows in labelled clouds, model names that finetune
and filter read alike, the held-out count of finetune, bench's results file, a resumed folder with a
stale temporary file, a folder made with other options, and collinear points to reconstruct. The
cases that need a signal or a full disk are tests of ``test_bad_input_round3_commands_extra.py``."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
from synthetic_clouds import surface_with_specks
from test_bad_input import CLOUD, Case, _prepare, _ptx_grid, _text_file, write_xyz

from pcfilter_lib.io.files import PART_NAME, verify_folder
from pcfilter_lib.io.model_cards import WEIGHTS


def _damaged_copy(source: str, name: str, how: str):
    """A copy of the shipped model ``source`` as ``name``: cut to half its length ("cut"), or with 64
    bytes in its middle overwritten ("overwritten")."""
    def damage(folder):
        data = bytearray((WEIGHTS / source).read_bytes())
        if how == "cut":
            data = data[:len(data) // 2]
        else:
            data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64
        (folder / name).write_bytes(bytes(data))
    return damage


def _pairs(folder, name="d", points=None, outliers=None):
    """A folder ``name`` of one PointCleanNet pair a.xyz + a.outliers (CLOUD, its stray point an outlier)."""
    points = CLOUD if points is None else points
    outliers = np.r_[np.zeros(len(points) - 1, int), 1] if outliers is None else outliers
    (folder / name).mkdir()
    write_xyz(folder / name / "a.xyz", points)
    (folder / name / "a.outliers").write_text("".join(f"{int(v)}\n" for v in outliers))
    return folder / name


def _labelled_clouds(folder, name="d"):
    """A folder of two sheets with specks floating above them, in both parts of each (finetune's data)."""
    (folder / name).mkdir()
    for seed in range(2):
        points, label = surface_with_specks(2000, 150, seed=seed)
        points[label == 0, 2] += 0.2
        np.savetxt(folder / name / f"s{seed}.xyz", points)
        (folder / name / f"s{seed}.outliers").write_text("".join(f"{1 - v}\n" for v in label))


def _labelled_ptx(folder, name="d"):
    """A folder of one labelled organised PTX scan (finetune's data for the U-Net)."""
    (folder / name).mkdir()
    (folder / name / "s.ptx").write_text(_ptx_grid())
    (folder / name / "s.outliers").write_text("".join("1\n" if i in (9, 20) else "0\n" for i in range(64)))


def _damaged_model(command: str, source: str, name: str, how: str):
    def make(folder):
        _damaged_copy(source, name, how)(folder)
        if command == "filter":
            write_xyz(folder / "c.xyz", CLOUD)
            return ["filter", "c.xyz", "-o", "out.ply", "--model", name]
        if command == "evaluate":
            _pairs(folder)
            return ["evaluate", "--data", "d", "--model", name]
        organised = name.endswith(".keras")
        (_labelled_ptx if organised else _labelled_clouds)(folder)
        return ["finetune", "--data", "d", "--out", "m.keras" if organised else "m.npz", "--model", name]
    return make


def _pickled_weights(folder):
    """A Keras archive whose weights are a pickled object array: Keras would advise allow_pickle."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(folder / "objs.keras", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.npz", buffer.getvalue())
    write_xyz(folder / "c.xyz", CLOUD)
    return ["filter", "c.xyz", "-o", "out.ply", "--model", "objs.keras"]


def _nan_pairs(*options):
    def make(folder):
        points = CLOUD.copy()
        points[10:15] = np.nan
        _pairs(folder, "d", points)
        return ["evaluate", "--data", "d", "--method", "sor", *options]
    return make


def _all_nan(folder):
    _pairs(folder, "d", np.full((20, 3), np.nan), np.zeros(20, int))
    return ["evaluate", "--data", "d", "--method", "sor"]


def _one_class_held_out(folder):
    """A sheet 2 m long whose specks float above its first metre only: the held-out far end holds none."""
    rng = np.random.default_rng(0)
    sheet = np.c_[rng.random((2000, 2)) * [2.0, 0.5], np.zeros(2000)]
    specks = np.c_[rng.random((100, 2)) * [1.0, 0.5], 0.05 + 0.1 * rng.random(100)]
    (folder / "d").mkdir()
    np.savetxt(folder / "d" / "a.xyz", np.r_[sheet, specks])
    (folder / "d" / "a.outliers").write_text("0\n" * 2000 + "1\n" * 100)
    return ["finetune", "--data", "d", "--out", "m.npz", "--epochs", "1", "--quiet"]


def _no_part_left(name):
    def check(folder):
        assert verify_folder(folder / name) == []
        assert not [p for p in (folder / name).rglob("*") if PART_NAME.match(p.name)]
    return check


def _stale_part(folder):
    _prepare(folder, ["modelnet", "--synthetic", "--out", "mn", "--quiet"])
    (folder / "mn" / "chair" / "train" / ".chair_0001.k3x9_0ab.part.off").write_bytes(b"")  # as Ctrl-C left it
    return ["modelnet", "--synthetic", "--out", "mn", "--quiet"]


def _with_data(maker, *argv):
    """Data made by ``maker`` in folder d, and the command line ``argv``."""
    def make(folder):
        maker(folder)
        return list(argv)
    return make


def _again(command, first, second):
    def make(folder):
        _prepare(folder, [command, "--out", "out", *first])
        return [command, "--out", "out", *second]
    return make


def _collinear(folder):
    rng = np.random.default_rng(0)
    t = np.sort(rng.random(500))
    write_xyz(folder / "c.xyz", np.c_[t, 2 * t, 1 - t] + 1e-7 * rng.standard_normal((500, 3)))
    return ["reconstruct", "c.xyz", "-o", "m.ply", "--method", "sor", "--quiet"]


def _plane_to_reconstruct(folder):
    write_xyz(folder / "c.xyz", CLOUD)
    return ["reconstruct", "c.xyz", "-o", "m.ply", "--method", "sor", "--quiet"]


SHIPPED = "give 'unet', 'points' or 'neighbours'"
SIM = ("--n", "2", "--size", "48x32")

ROWS = [
    # 1: damaged model files, found before NumPy or Keras reads them (and before TensorFlow starts).
    Case("3.1 commands: filter --model of a neighbour filter cut short",
         _damaged_model("filter", "neighbour_filter.npz", "x.npz", "cut"), 1,
         "--model x.npz is damaged: its zip archive cannot be read", avoids="BadZipFile"),
    Case("3.1 commands: evaluate --model of a neighbour filter cut short",
         _damaged_model("evaluate", "neighbour_filter.npz", "x.npz", "cut"), 1,
         "--model x.npz is damaged", avoids="BadZipFile"),
    Case("3.1 commands: finetune --model of a neighbour filter cut short",
         _damaged_model("finetune", "neighbour_filter.npz", "x.npz", "cut"), 1,
         "--model x.npz is damaged", avoids="BadZipFile"),
    Case("3.1 commands: filter --model of a Keras filter cut short",
         _damaged_model("filter", "pointnet_filter.keras", "trunc.keras", "cut"), 1,
         "--model trunc.keras is damaged: its zip archive cannot be read", avoids="File not found"),
    Case("3.1 commands: finetune --model of an overwritten U-Net",
         _damaged_model("finetune", "unet_filter.keras", "corrupt.keras", "overwritten"), 1,
         "--model corrupt.keras is damaged", avoids="pickle"),
    Case("3.1 commands: a damaged file says what to do",
         _damaged_model("filter", "pointnet_filter.keras", "trunc.keras", "overwritten"), 1,
         "save or copy it again (or train it again); or give 'unet', 'points' or 'neighbours'", avoids="safe_mode"),
    Case("3.1 commands: a Keras archive of pickled objects", _pickled_weights, 1,
         "objs.keras is not a loadable Keras model (it holds Python code or objects, which are never loaded",
         tensorflow=True, avoids="pickle"),
    # 2: manifests that are no manifests: what is wrong, and a remedy that deletes nothing.
    Case("3.2 commands: evaluate on a folder whose manifest.json is {}",
         _text_file("manifest.json", "{}", ["evaluate", "--data", "."]), 1,
         "manifest.json is not a pcfilter manifest (a JSON object whose 'files' maps names to sha256; this one has "
         "no 'files'); restore it from a copy, or make the data again into a new folder", avoids="delete"),
    Case("3.2 commands: evaluate on a manifest that is not JSON",
         _text_file("manifest.json", "{not json", ["evaluate", "--data", "."]), 1,
         "manifest.json is not valid JSON", avoids="delete"),
    Case("3.2 commands: evaluate on a manifest whose files is a list",
         _text_file("manifest.json", '{"files": []}', ["evaluate", "--data", "."]), 1,
         "its 'files' is a JSON list", avoids="delete"),
    # 3: NaN rows of a PointCleanNet pair are left out of the figures, and counted.
    Case("3.3 commands: evaluate a pair with 5 NaN rows", _nan_pairs(), 0,
         "note: left out 5 points with NaN or infinite coordinates"),
    Case("3.3 commands: ... as JSON", _nan_pairs("--json"), 0, '"left_out": 5'),
    Case("3.3 commands: a pair of NaN rows only", _all_nan, 1,
         "a.xyz: none of its 20 points has finite coordinates"),
    # 4: names --model accepts, listed where a name is unknown, read alike by filter and finetune.
    Case("3.4 commands: filter --model of an unknown name",
         _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--model", "pointnet"]), 1,
         f"--model pointnet is neither a shipped filter nor a file; {SHIPPED}"),
    Case("3.4 commands: evaluate --model of an unknown name",
         _with_data(_pairs, "evaluate", "--data", "d", "--model", "unets"), 1,
         f"--model unets is neither a shipped filter nor a file; {SHIPPED}"),
    Case("3.4 commands: filter --model of a missing file",
         _text_file("c.xyz", "0 0 0\n", ["filter", "c.xyz", "-o", "o.ply", "--model", "mine.npz"]), 1,
         f"--model mine.npz does not exist; check the path, or {SHIPPED}"),
    Case("3.4 commands: finetune --model of an unknown name",
         _with_data(_labelled_clouds, "finetune", "--data", "d", "--out", "m.npz", "--model", "pointnet"), 1,
         "--model pointnet is neither a shipped filter nor a file; give 'unet' or 'neighbours'"),
    Case("3.4 commands: finetune --model points",
         _with_data(_labelled_clouds, "finetune", "--data", "d", "--out", "m.npz", "--model", "points"), 1,
         "--model points is the shipped point filter, which finetune does not fine-tune"),
    Case("3.4 commands: finetune --model unet on unorganised clouds",
         _with_data(_labelled_clouds, "finetune", "--data", "d", "--out", "m.npz", "--model", "unet"), 1,
         "--model unet is a U-Net, which fine-tunes on organised scans"),
    Case("3.4 commands: finetune --model neighbours with --network unet",
         _with_data(_labelled_ptx, "finetune", "--data", "d", "--out", "m.keras", "--network", "unet", "--model",
                    "neighbours"), 1,
         "--model neighbours is the neighbour filter, and --network unet fine-tunes the U-Net"),
    Case("3.4 commands: finetune --model neighbours, as filter names it",
         _with_data(_labelled_clouds, "finetune", "--data", "d", "--out", "m.npz", "--model", "neighbours",
                    "--epochs", "1", "--quiet"), 0, "wrote m.npz and m.json", ("m.npz", "m.json")),
    # 5: the held-out count is the labels' count.
    Case("3.5 commands: finetune with one class in the held-out blocks", _one_class_held_out, 1,
         "the held-out blocks holds only true points (", tensorflow=True, avoids="(0 points)"),
    # 6: bench's results file, checked before the benchmark.
    Case("3.6 commands: bench --out holding [1, 2, 3]",
         _text_file("r.json", "[1, 2, 3]", ["bench", "--out", "r.json"]), 1,
         "--out r.json is not a bench results file: its item 1 is a JSON number, not a result row"),
    Case("3.6 commands: bench --out holding text",
         _text_file("r.json", "my notes\n", ["bench", "--out", "r.json"]), 1,
         "--out r.json is not a bench results file: it is not JSON"),
    Case("3.6 commands: bench --out holding an object",
         _text_file("r.json", '{"rows": []}', ["bench", "--out", "r.json"]), 1,
         "--out r.json is not a bench results file: it holds a JSON object, not a list of result rows"),
    # 7: a resumed folder loses the temporary file an interrupted run left.
    Case("3.7 commands: modelnet resumes a folder with a stale temporary file", _stale_part, 0,
         "procedural ModelNet10 in mn", check=_no_part_left("mn"), repairs=True),
    # 8: a folder made with other options: which option, with the folder's value and this run's.
    Case("3.8 commands: modelnet into its folder with another --seed",
         _again("modelnet", ("--synthetic", "--quiet"), ("--synthetic", "--quiet", "--seed", "5")), 1,
         "--out out already holds other data, a data set written with other options: --seed 0 (this run: 5)"),
    Case("3.8 commands: simulate into its folder with another --n", _again("simulate", SIM, ("--n", "3", *SIM[2:])), 1,
         "--out out already holds other data, a dataset simulated with other options: --n 2 (this run: 3)"),
    Case("3.8 commands: simulate into its folder with another --size",
         _again("simulate", SIM, (*SIM[:2], "--size", "40x32")), 1, "--size 48x32 (this run: 40x32)"),
    Case("3.8 commands: simulate into its folder with --semantic",
         _again("simulate", SIM, (*SIM, "--semantic", "--seed", "1")), 1,
         "--seed 0 (this run: 1); --semantic off (this run: on)"),
    # 10: points along a line span no surface.
    Case("3.10 commands: reconstruct of collinear points", _collinear, 1, "points lie along a line"),
    Case("3.10 commands: reconstruct of a plane still works", _plane_to_reconstruct, 0, "m.ply", ("m.ply",)),
]

assert all(re.match(r"3\.\d+ commands: ", case.name) for case in ROWS)
