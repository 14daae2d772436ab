"""Saved models: one loader for the ``.keras`` files pcfilter writes and ships, and the writer of
the shipped ones (``save_for_inference``).

Every custom layer, loss, metric, regulariser and optimiser of the library is registered with Keras
(``keras.saving.register_keras_serializable``) when ``pcfilter_lib.models`` is imported, since the
package imports each module that defines one; so ``keras.models.load_model(path)`` needs no
``custom_objects``, and nor does this loader. What it adds is the messages: a missing shipped model
names the command that trains it again (``io.model_cards.check_model_file``), and a file Keras cannot
read gives one line instead of a traceback.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras

from pcfilter_lib.io.files import atomic_write_with
from pcfilter_lib.io.model_cards import archive_problem, check_model_file, damaged_hint


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
