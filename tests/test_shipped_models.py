"""Every shipped model still loads and gives the predictions it gave when it was trained, on a small
fixed input: a guard against a refactoring that changes a layer's name, registration or maths.

``tests/data/shipped_model_outputs.npz`` holds, for each model, two random inputs and the outputs the
shipped ``.keras`` file gave for them when it was recorded (``<name>_input``, ``<name>_output``).
"""

from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib.filters.base import load_model_file
from pcfilter_lib.io.model_cards import WEIGHTS, read_model_card

EXPECTED = np.load(Path(__file__).parent / "data" / "shipped_model_outputs.npz")
NAMES = ("unet_filter", "pointnet_filter", "pointnet_modelnet10", "pointnet2_modelnet10", "dgcnn_modelnet10",
         "punet_upsampling", "yovo_modelnet10")


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_gives_its_recorded_predictions(name):
    path = WEIGHTS / f"{name}.keras"
    model = load_model_file(path, path, name)
    x, expected = EXPECTED[f"{name}_input"], EXPECTED[f"{name}_output"]
    np.testing.assert_allclose(np.asarray(model.predict_on_batch(x)), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_model_has_a_card(name):
    card = read_model_card(WEIGHTS / f"{name}.keras")
    assert card.model == f"{name}.keras" and card.target and card.command and card.data and card.test
    assert card.file_bytes == (WEIGHTS / f"{name}.keras").stat().st_size
