"""Model files and their model cards: the JSON manifest written beside every shipped ``.keras`` file
(``name.keras`` -> ``name.json``), recording its data, command, settings, metrics, time and size."""

from __future__ import annotations

import json
import os
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # the shipped models and their cards


def card_path(model_path: str | os.PathLike) -> Path:
    """The model card written beside a model file (``name.keras`` -> ``name.json``)."""
    return Path(model_path).with_suffix(".json")


def read_model_card(model_path: str | os.PathLike) -> dict:
    """The model card beside ``model_path`` as a dict ({} when there is none).

    Raises:
        ValueError: the card exists but is not valid JSON.
    """
    path = card_path(model_path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); retrain or restore the model's card") from error
