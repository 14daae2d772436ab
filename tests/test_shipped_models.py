"""Every shipped model still loads and gives the predictions it gave when it was trained, on a small
fixed input: a guard against a refactoring that changes a layer's name, registration or maths. Each
loads with plain ``keras.models.load_model`` after ``import pcfilter_lib.models`` alone, in one fresh
process that also predicts (TensorFlow starts once, each file loads once), while ``import pcfilter_lib``
alone starts neither Keras nor TensorFlow.

``tests/data/shipped_model_outputs.npz`` holds, for each model, one or two random inputs and the outputs the
shipped ``.keras`` file gave for them when it was recorded (``<name>_input``, ``<name>_output``), written with
``np.savez_compressed`` to keep the file small.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcfilter_lib import runtime

runtime.setup(seed=0)

from pcfilter_lib.io.model_cards import SHIPPED_TARGETS, WEIGHTS, check_model_file, read_model_card, retrain_hint
from pcfilter_lib.models.saved import load_saved_model

LIB = Path(__file__).resolve().parent.parent / "pcfilter_lib"

RECORDED = Path(__file__).parent / "data" / "shipped_model_outputs.npz"
EXPECTED = np.load(RECORDED)
NAMES = ("unet_filter", "pointnet_filter", "pointnet_modelnet10", "pointnet2_modelnet10", "dgcnn_modelnet10",
         "punet_upsampling", "yovo_modelnet10", "scene_image_network", "scene_column_network", "scene_unet",
         "scene_unet_images", "scene_unet_both", "completion_network", "pointnet_old_classes",
         "pointnet_scratch_scans_10", "pointnet_scratch_scans_100", "pointnet_scratch_newclasses_100",
         "unet_loss_bce", "unet_loss_weightedbce", "unet_loss_focal", "unet_loss_dice", "scene_unet_power_000",
         "scene_unet_power_050", "scene_unet_power_100", "pointnet_head_scans_10", "pointnet_tuned_scans_10",
         "pointnet_head_scans_100", "pointnet_tuned_scans_100", "pointnet_head_newclasses_100",
         "pointnet_tuned_newclasses_100", "representation_voxnet", "representation_pointnet",
         "representation_mvcnn1", "representation_mvcnn3", "representation_mvcnn6", "representation_mvcnn12",
         *(f"representation_{name}_share{percent:03d}" for name in ("voxnet", "mvcnn12") for percent in (10, 25, 50)),
         "scene_point_network", "octree_study_dense", "octree_study_octree")


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_model_has_a_card(name):
    card = read_model_card(WEIGHTS / f"{name}.keras")
    assert card.model == f"{name}.keras" and card.target and card.command and card.data and card.test
    assert card.file_bytes == (WEIGHTS / f"{name}.keras").stat().st_size


def _run(script: str) -> str:
    """The standard output of ``script`` run by a fresh interpreter in the repository's root, so that it
    imports this checkout's ``pcfilter_lib`` (it fails the test if the script fails)."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=LIB.parent, env={"PATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def fresh_interpreter(tmp_path_factory) -> tuple[set[str], set[str], list[Path], list[str], dict]:
    """What one fresh interpreter does: the modules it holds after ``import pcfilter_lib`` alone, then after
    ``import pcfilter_lib.models`` alone (each read before anything else is imported); then, with plain
    ``keras.models.load_model``, each shipped file's model name and weight count, or why it did not load, one
    line each, with the files it loaded; and each loaded model's prediction of its recorded input, by name (or,
    under "<name> failed", why it could not predict): one eager ``predict_step``, the step ``predict_on_batch``
    runs, without tracing a graph for each of the fifty models (10 s of CPU less). A file that fails to load
    or to predict fails only the tests of loading and of its predictions."""
    files = sorted(WEIGHTS.glob("*.keras"))
    predicted = tmp_path_factory.mktemp("shipped") / "predicted.npz"
    named = [(str(f), f.stem) for f in files]
    script = (f"FILES, RECORDED, PREDICTED = {named!r}, {str(RECORDED)!r}, {str(predicted)!r}\n"
              "import sys, pcfilter_lib\n"
              "print(*sys.modules)\n"
              "import pcfilter_lib.models\n"
              "print(*sys.modules)\n"
              "import keras, numpy as np\n"
              "recorded, outputs = np.load(RECORDED), {}\n"
              "for path, name in FILES:\n"
              "    try:\n"
              "        model = keras.models.load_model(path)\n"
              "    except Exception as error:\n"
              "        print('not loaded:', path, repr(error).replace('\\n', ' '))\n"
              "    else:\n"
              "        print(model.name, model.count_params())\n"
              "        try:\n"
              "            output = model.predict_step(recorded[name + '_input'])\n"
              "            outputs[name] = keras.ops.convert_to_numpy(output)\n"
              "        except Exception as error:\n"
              "            outputs[name + ' failed'] = np.array(repr(error))\n"
              "np.savez(PREDICTED, **outputs)\n")
    package, models, *lines = _run(script).splitlines()
    with np.load(predicted) as outputs:
        return set(package.split()), set(models.split()), files, lines, dict(outputs)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_gives_its_recorded_predictions(name, fresh_interpreter):
    *_, predicted = fresh_interpreter
    assert name in predicted, str(predicted.get(f"{name} failed", f"{name}.keras did not load"))
    np.testing.assert_allclose(predicted[name], EXPECTED[f"{name}_output"], rtol=1e-4, atol=1e-5)


def test_every_shipped_file_loads_after_importing_the_models_package_alone(fresh_interpreter):
    _, _, files, lines, _ = fresh_interpreter
    assert {f.name for f in files} == {name for name in SHIPPED_TARGETS if name.endswith(".keras")}
    assert not [line for line in lines if line.startswith("not loaded:")]
    assert len(lines) == len(files) and all(int(line.split()[-1]) > 0 for line in lines)


def _registering_modules() -> set[str]:
    """The library modules that register a class or function with Keras (read from their source)."""
    found = set()
    for path in LIB.rglob("*.py"):
        source = path.read_text()
        if "register_keras_serializable" not in source:  # nothing to parse
            continue
        tree = ast.parse(source)
        if any("register_keras_serializable" in ast.unparse(d) for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef | ast.FunctionDef) for d in node.decorator_list):
            found.add(".".join(("pcfilter_lib", *path.relative_to(LIB).with_suffix("").parts)))
    return found


def test_the_models_package_imports_every_module_that_registers_with_keras(fresh_interpreter):
    registering = _registering_modules()
    assert {"pcfilter_lib.models.dgcnn", "pcfilter_lib.nn.losses"} <= registering
    _, imported, _, _, _ = fresh_interpreter
    assert registering <= imported, f"add {sorted(registering - imported)} to pcfilter_lib/models/__init__.py"


def test_importing_the_package_starts_neither_keras_nor_tensorflow(fresh_interpreter):
    loaded, *_ = fresh_interpreter
    assert "pcfilter_lib" in loaded and not loaded & {"keras", "tensorflow", "jax", "torch"}


def test_a_missing_shipped_model_names_the_command_that_retrains_it(tmp_path):
    assert retrain_hint(WEIGHTS / "punet_upsampling.keras") == (
        "train it with 'python data_scripts/train_reference_models.py --target punet'")
    assert retrain_hint(tmp_path / "punet_upsampling.keras") == "check the path"  # not the shipped one
    with pytest.raises(FileNotFoundError, match=r"upsampling model .*none.keras does not exist; check the path"):
        load_saved_model(tmp_path / "none.keras", "upsampling model")
    assert check_model_file(WEIGHTS / "unet_filter.keras") == WEIGHTS / "unet_filter.keras"
    (tmp_path / "bad.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.keras is not a loadable Keras model"):
        load_saved_model(tmp_path / "bad.keras")
