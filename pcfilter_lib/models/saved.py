"""Saved models: one loader for the ``.keras`` files pcfilter writes and ships, the writer of the
shipped ones (``save_for_inference``), and the loader of a shipped network where its card says it is
what a run would train (``shipped_network``, ``shipped_or_trained``: the same data set, settings and
inputs), so that the book reads back what was trained once instead of training it again.

Every custom layer, loss, metric, regulariser and optimiser of the library is registered with Keras
(``keras.saving.register_keras_serializable``) when ``pcfilter_lib.models`` is imported, since the
package imports each module that defines one; so ``keras.models.load_model(path)`` needs no
``custom_objects``, and nor does this loader. What it adds is the messages: a missing shipped model
names the command that trains it again (``io.model_cards.check_model_file``), and a file Keras cannot
read gives one line instead of a traceback.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import keras

from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import (
    ModelCard,
    archive_problem,
    check_model_file,
    damaged_hint,
    learnt_from,
    read_model_card,
)
from pcfilter_lib.nn.fit import TrainResult


def load_saved_model(path: str | os.PathLike, what: str = "model file") -> keras.Model:
    """The Keras model saved at ``path``, loaded for inference.

    Args:
        path: a ``.keras`` file, e.g. one of ``pcfilter_lib/weights/``.
        what: what the file is, as a missing-file message should say it (e.g. ``"upsampling model"``).

    Returns:
        The ``keras.Model``, uncompiled (no optimiser state or loss is restored).

    Raises:
        FileNotFoundError: ``path`` is not a file; for a shipped model the message says how to retrain it.
        ValueError: Keras cannot load it.
    """
    path = check_model_file(path, what)
    problem = archive_problem(path)  # Keras would say "File not found" for a zip cut short
    if problem is not None:
        kind, why = problem
        raise ValueError(f"{path} is not a loadable Keras model: {'it is damaged: ' * (kind == 'damaged')}{why}; "
                         + (f"{damaged_hint(path)}, or give" if kind == "damaged" else "give") + " a model saved with "
                         "model.save")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged or foreign file
        raise ValueError(f"{path} is not a loadable Keras model ({_reason(error)}); {damaged_hint(path)}, or give a "
                         "model saved with model.save") from error


def _reason(error: Exception) -> str:
    """Why Keras could not load a model, in a few words; never its advice to load the file unsafely
    (``safe_mode=False`` for a model that holds code, ``allow_pickle`` for pickled arrays)."""
    text = " ".join(str(error).split())
    if any(word in text for word in ("safe_mode", "pickle", "Lambda")):
        return "it holds Python code or objects, which are never loaded from a file because loading them can run code"
    return f"Keras: {text[:300].rstrip('.; ')}"


def save_for_inference(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save ``model``'s architecture and weights, atomically, without its optimizer: Ranger keeps
    two moments and a slow copy of every weight, which would make the file four times larger and
    serve no one who uses the network. Keras stores the archive's members uncompressed; they are
    deflated here (about 15% smaller), which ``keras.models.load_model`` reads as it is. Returns
    the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bare = model.__class__.from_config(model.get_config())
    bare.set_weights(model.get_weights())

    def write(tmp: Path) -> None:
        bare.save(tmp)
        with zipfile.ZipFile(tmp) as stored:
            members = [(info.filename, stored.read(info)) for info in stored.infolist()]
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as packed:
            for name, data in members:
                packed.writestr(name, data)

    atomic_write_with(path, write)
    return path


def shipped_network(path: str | os.PathLike, folder: str | os.PathLike | None, settings: Mapping, what: str,
                    **data) -> tuple[keras.Model, ModelCard] | None:
    """The shipped network at ``path`` and its card, if it is what this run would train: it learnt from
    a data set of the same recipe as ``folder``'s (``learnt_from``), with the same ``settings`` and the
    same ``data`` entries (e.g. the checksum of a frozen network whose features it read); else None,
    and the caller trains its own (fast mode, another seed or budget).

    Args:
        path: the model file; its card lies beside it.
        folder: the data set the run reads; None for data made in memory, which ``data`` describes.
        settings: the run's settings, as the card's ``settings`` records them.
        what: what the network is, for a message about a file that does not load.
        **data: further entries the card's ``data`` must hold.
    """
    card = read_model_card(path)
    if card is None or (folder is not None and not learnt_from(card, folder)):
        return None
    if card.settings != json.loads(json.dumps(dict(settings))):
        return None
    if any(card.data.get(key) != json.loads(json.dumps(value)) for key, value in data.items()):
        return None
    return load_saved_model(path, what), card


def shipped_or_trained(path: str | os.PathLike | None, folder: str | os.PathLike | None, settings: Mapping, what: str,
                       train: Callable[[], TrainResult], **data) -> tuple[TrainResult, bool]:
    """The shipped network at ``path`` where ``shipped_network`` finds it is what this run would train
    (its card's history and training seconds stand for the run's), else ``train()``'s; and whether it
    was the shipped one. ``path`` None always trains."""
    found = shipped_network(path, folder, settings, what, **data) if path else None
    if found is None:
        return train(), False
    model, card = found
    return TrainResult(model, card.history, card.training_seconds), True
