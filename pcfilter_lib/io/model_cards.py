"""Model files and their model cards.

Every shipped model file (``.keras``, or ``.npz`` for a network run in NumPy) has a card beside it
(``name.keras`` -> ``name.json``) with the same fields for every model: where its data came from, the
command and settings that trained it, its metrics on validation and test data, how long training took
and how large the model is. Whatever belongs to one recipe only (a loss comparison, a feature
ablation, tuned baselines) goes in ``details``.

``provenance`` writes where a data set came from into a card's ``data``; ``same_data`` and
``learnt_from`` tell whether a card's model learnt from a data set of the same recipe as a folder's.
``check_model_file`` reports a missing model file, naming the command that retrains a shipped one,
before Keras starts; ``models.saved.load_saved_model`` loads the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pcfilter_lib.io.files import atomic_write_text, is_zip_file, read_manifest, sha256

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # the shipped models and their cards
# The shipped PU-Net (``models.punet.load_upsampler``), named here so that the command line can read
# its card before Keras starts.
SHIPPED_UPSAMPLER = WEIGHTS / "punet_upsampling.keras"
# Each shipped model file and the ``data_scripts/train_reference_models.py --target`` that (re)trains it
# (one target may train several files).
SHIPPED_TARGETS = {"pointnet_modelnet10.keras": "pointnet", "pointnet2_modelnet10.keras": "pointnet2",
                   "dgcnn_modelnet10.keras": "dgcnn", "kpconv_modelnet10.keras": "kpconv",
                   "unet_filter.keras": "unet",
                   "pointnet_filter.keras": "pointfilter", "punet_upsampling.keras": "punet",
                   "yovo_modelnet10.keras": "yovo", "neighbour_filter.npz": "neighbourfilter",
                   "scene_image_network.keras": "sceneimages", "scene_column_network.keras": "scenecolumn",
                   "scene_unet.keras": "sceneunet", "scene_unet_images.keras": "sceneunetimages",
                   "scene_unet_both.keras": "sceneunetboth", "completion_network.keras": "completion",
                   "pointnet_old_classes.keras": "pointnetoldclasses",
                   "pointnet_scratch_scans_10.keras": "pointnetscratchscans10",
                   "pointnet_scratch_scans_100.keras": "pointnetscratchscans100",
                   "pointnet_scratch_newclasses_100.keras": "pointnetscratchnewclasses100",
                   "unet_loss_bce.keras": "unetlossbce", "unet_loss_weightedbce.keras": "unetlossweightedbce",
                   "unet_loss_focal.keras": "unetlossfocal", "unet_loss_dice.keras": "unetlossdice",
                   "scene_unet_power_000.keras": "sceneunetpower000", "scene_unet_power_050.keras": "sceneunetpower050",
                   "scene_unet_power_100.keras": "sceneunetpower100",
                   **{f"pointnet_{kind}_{task}_{percent}.keras": f"pointnettransfer{task}{percent}"
                      for task, percent in (("scans", 10), ("scans", 100), ("newclasses", 100))
                      for kind in ("head", "tuned")},
                   "scene_point_network.keras": "scenepoints",
                   "octree_study_dense.keras": "octree", "octree_study_octree.keras": "octree",
                   **dict.fromkeys(("scene_unet_128.keras", "sparse_scene_unet_64.keras",
                                    "sparse_scene_unet_128.keras"), "sparsescenes"),
                   **{f"representation_{name}.keras": "representations"
                      for name in ("voxnet", "pointnet", "mvcnn1", "mvcnn3", "mvcnn6", "mvcnn12")},
                   **{f"representation_{name}_share{percent:03d}.keras": "representationshares"
                      for name in ("voxnet", "mvcnn12") for percent in (10, 25, 50)}}


@dataclass
class ModelCard:
    """What a trained model is and how it was made.

    Attributes:
        model: the model file's name, e.g. ``unet_filter.keras``.
        target: the recipe that trains it (``train_reference_models.py --target``).
        load_with: how to load it in Python.
        data: provenance of the training data: generator, version, seed, manifest sha256, sizes.
        settings: every setting of the training run (sizes, epochs, learning rate, seed, ...).
        test: metrics on the test split (never used to choose anything).
        validation: metrics on the validation split, where settings or a threshold were chosen.
        threshold: the decision threshold of a filter (None for a classifier).
        parameters: the number of weights.
        file_bytes: the size of the model file.
        training_seconds: time spent in training proper.
        wall_seconds: time of the whole recipe (data, comparisons, evaluation).
        history: per-epoch values of the final run (Keras names: loss, mean_iou, ...).
        command: the command line that ran the recipe.
        environment: Python, TensorFlow, Keras and NumPy versions and the machine.
        details: what only this recipe records.
    """

    model: str
    target: str
    load_with: str
    data: dict
    settings: dict
    test: dict
    validation: dict = field(default_factory=dict)
    threshold: float | None = None
    parameters: int = 0
    file_bytes: int = 0
    training_seconds: float = 0.0
    wall_seconds: float = 0.0
    history: dict = field(default_factory=dict)
    command: str = ""
    environment: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The card as plain JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model card") -> ModelCard:
        """A card from the dict of its JSON file.

        Raises:
            ValueError: a field is missing or unknown.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if not isinstance(data, dict):
            raise ValueError(f"{where} must hold a JSON object, not {type(data).__name__}")
        if missing := sorted(required - set(data)):
            raise ValueError(f"{where} lacks the fields {missing}; retrain the model or restore its card")
        if unknown := sorted(set(data) - names):
            raise ValueError(f"{where} has unknown fields {unknown}; it was written by another version of pcfilter")
        return cls(**data)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the card as indented JSON to ``path`` (atomically) and return the path."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def card_path(model_path: str | os.PathLike) -> Path:
    """The model card written beside a model file (``name.keras`` -> ``name.json``)."""
    return Path(model_path).with_suffix(".json")


def read_model_card(model_path: str | os.PathLike) -> ModelCard | None:
    """The card beside ``model_path``, or None when there is none.

    Raises:
        ValueError: the card exists but is not valid JSON or not a model card.
    """
    path = card_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); retrain or restore the model's card") from error
    return ModelCard.from_dict(data, str(path))


def provenance(folder: str | os.PathLike, **sizes) -> dict:
    """Where a data set came from, for a model card: generator, version, seed, parameters and the
    sha256 of its manifest, plus ``sizes`` (e.g. the number of scans per split)."""
    folder = Path(folder)
    manifest = read_manifest(folder) or {}
    has_manifest = (folder / "manifest.json").is_file()
    return {"folder": folder.name, "generator": manifest.get("generator"), "version": manifest.get("version"),
            "seed": manifest.get("seed"), "parameters": manifest.get("parameters"),
            "manifest_sha256": sha256(folder / "manifest.json") if has_manifest else None, **sizes}


def same_data(data: Mapping, folder: str | os.PathLike) -> bool:
    """Whether ``data`` (a ``provenance`` as a record keeps it) describes a data set of the same recipe as
    the one in ``folder``: generator, version, seed and parameters. The files' checksums are not
    compared: simulated or fused data may differ in its last bits between processors."""
    here = provenance(folder)
    return all(data.get(key) == here[key] for key in ("generator", "version", "seed", "parameters"))


def learnt_from(card: ModelCard | None, folder: str | os.PathLike) -> bool:
    """Whether ``card``'s model learnt from a data set of the same recipe as the one in ``folder``
    (``same_data``)."""
    return card is not None and same_data(card.data, folder)


def retrain_hint(model_path: str | os.PathLike) -> str:
    """What to do about a missing model file: for a shipped one (a ``SHIPPED_TARGETS`` file in
    ``WEIGHTS``), the command that trains it again; for any other, "check the path"."""
    path = Path(model_path)
    target = SHIPPED_TARGETS.get(path.name) if path.resolve().parent == WEIGHTS else None
    if target is None:
        return "check the path"
    return f"train it with 'python data_scripts/train_reference_models.py --target {target}'"


def check_model_file(model_path: str | os.PathLike, what: str = "model file") -> Path:
    """``model_path`` as a Path if it is a file; read before Keras starts, so a missing model is reported at once.

    Args:
        model_path: a ``.keras`` file.
        what: what the file is, as the message should say it (e.g. ``"upsampling model"``).

    Raises:
        FileNotFoundError: it is not a file; the message says how to retrain a shipped model (``retrain_hint``).
    """
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; {retrain_hint(path)}")
    return path


# What a model archive must hold: a Keras 3 ``.keras`` file its configuration (and weights, as the
# second member list says), a neighbour filter ``.npz`` (``NeighbourFilter.save``) its format tag.
ARCHIVE_MEMBERS = {".keras": (("config.json",), "a Keras model archive (model.save)"),
                   ".npz": (("format.npy",), "a neighbour filter (NeighbourFilter.save)")}


def damaged_hint(model_path: str | os.PathLike) -> str:
    """What to do about a damaged model file: for a shipped one, the command that trains it again
    (``retrain_hint``); for any other, save or copy it again."""
    hint = retrain_hint(model_path)
    return hint if hint != "check the path" else "save or copy it again (or train it again)"


def archive_problem(model_path: str | os.PathLike) -> tuple[str, str] | None:
    """What is wrong with a model archive (``.keras`` or ``.npz``, both zip files), or None: ("foreign",
    why) for a file that does not start as a zip archive, ("damaged", why) for an archive whose
    directory cannot be read or a member of which fails its checksum (a file cut short or
    overwritten), ("incomplete", why) for one that lacks the members of its kind (``ARCHIVE_MEMBERS``).
    Files of other suffixes are left to their loaders (None)."""
    path = Path(model_path)
    kind = ARCHIVE_MEMBERS.get(path.suffix.lower())
    if kind is None:
        return None
    if not is_zip_file(path):
        return "foreign", f"a {path.suffix.lower()} file is a zip archive and this one does not start as one"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member: the first whose checksum fails, or None
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as error:
        return "damaged", (f"its zip archive cannot be read ({str(error).rstrip('.')}): the file was cut short or "
                           "overwritten")
    if bad is not None:
        return "damaged", f"the member {bad} of its zip archive fails its checksum: the file was overwritten"
    if missing := [member for member in kind[0] if member not in names]:
        return "incomplete", f"it is a zip archive without {', '.join(missing)}"
    return None


def check_model_archive(model_path: str | os.PathLike, what: str = "model file", remedy: str = "") -> Path:
    """``model_path`` if it is a whole model archive of its kind (``archive_problem``), checked before
    Keras or NumPy read it: Keras says "File not found" for a zip cut short, NumPy raises
    ``zipfile.BadZipFile``, and either may advise loading a file unsafely.

    Args:
        model_path: the file (which exists: ``check_model_file``).
        what: what the file is, as the message should say it (e.g. ``"--model"``).
        remedy: what else the user may give instead, ending the message (e.g. the shipped names).

    Raises:
        ValueError: the file is not a model archive of its kind, or is damaged; the message names the
            file, what is wrong and what to do.
    """
    path = Path(model_path)
    problem = archive_problem(path)
    if problem is None:
        return path
    kind, why = problem
    instead = f"; {remedy}" if remedy else ""
    name = ARCHIVE_MEMBERS[path.suffix.lower()][1]
    if kind == "damaged":
        raise ValueError(f"{what} {path} is damaged: {why}; {damaged_hint(path)}{instead}")
    raise ValueError(f"{what} {path} is not {name}: {why}{instead}")
