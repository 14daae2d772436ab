"""Training: the shared segmentation loop, on one device and data-parallel over two CPU devices."""

import json
import subprocess
import sys

import pytest

from pcfilter_lib import losses, training
from pcfilter_lib.data.synthetic2d import make_scratches
from pcfilter_lib.models.unet import build_unet

# Runs in a fresh process: the CPU can only be split into logical devices before TensorFlow starts.
MIRRORED = """
from pcfilter_lib import runtime
runtime.setup(seed=0, cpu_devices=2)
import json, keras, tensorflow as tf
from pcfilter_lib import losses, training
from pcfilter_lib.data.synthetic2d import make_scratches
from pcfilter_lib.models.unet import build_unet
data = make_scratches(16, 32, seed=0)
def build():
    keras.utils.set_random_seed(0)
    return build_unet(input_channels=2, depth=2, filters=(4, 8, 8))
curves = {}
for name, strategy in [("one", None), ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    result = training.train_segmentation(build, losses.BinaryFocalLoss(0.25, 2.0),
                                         (data.images, data.labels, data.weights), epochs=2, batch_size=8,
                                         strategy=strategy)
    curves[name] = result.history["loss"]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, **curves}))
"""


def test_training_records_history_and_time():
    data = make_scratches(16, 32, seed=1)
    result = training.train_segmentation(build_unet(input_channels=2, depth=2, filters=(4, 8, 8)),
                                         losses.BinaryCrossentropy(), (data.images, data.labels, data.weights),
                                         validation=(data.images, data.labels, data.weights), epochs=2, batch_size=8)
    assert len(result.history["loss"]) == 2 and "val_mean_iou" in result.history
    assert result.seconds > 0


def test_bad_arguments_are_refused():
    model = build_unet(input_channels=2, depth=2, filters=(4, 8, 8))
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        training.train_segmentation(model, losses.BinaryCrossentropy(), None, epochs=0)
    with pytest.raises(ValueError, match="pass a function that builds the model"):
        training.train_segmentation(model, losses.BinaryCrossentropy(), None, strategy=object())


def test_mirrored_strategy_on_two_cpu_devices_follows_the_single_device_loss_curve():
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    curves = json.loads(result.stdout.strip().splitlines()[-1])
    assert curves["replicas"] == 2
    assert curves["one"] == pytest.approx(curves["mirrored"], rel=1e-4)
    assert curves["one"][-1] < curves["one"][0]
