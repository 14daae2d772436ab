"""Saved models: one loader for the ``.keras`` files pcfilter writes and ships.

Every custom layer, loss, metric, regulariser and optimiser of the library is registered with Keras
(``keras.saving.register_keras_serializable``) when ``pcfilter_lib.models`` is imported, since the
package imports each module that defines one; so ``keras.models.load_model(path)`` needs no
``custom_objects``, and nor does this loader. What it adds is the messages: a missing shipped model
names the command that trains it again (``io.model_cards.check_model_file``), and a file Keras cannot
read gives one line instead of a traceback.
"""

from __future__ import annotations

import os

import keras

from pcfilter_lib.io.files import is_zip_file
from pcfilter_lib.io.model_cards import check_model_file


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
    if path.suffix.lower() == ".keras" and not is_zip_file(path):  # Keras would say "File not found"
        raise ValueError(f"{path} is not a loadable Keras model: a .keras file is a zip archive and this one is "
                         "not; give a model saved with model.save")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a damaged or foreign file
        raise ValueError(f"{path} is not a loadable Keras model (Keras: {str(error).rstrip('.; ')}); give a model "
                         "saved with model.save") from error
