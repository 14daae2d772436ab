"""Training: the shared segmentation loop, on one device and data-parallel over two CPU devices."""

import pytest

from pcfilter_lib.bench import workloads
from pcfilter_lib.data.synthetic2d import make_scratches
from pcfilter_lib.models.unet import build_unet
from pcfilter_lib.nn import fit as training
from pcfilter_lib.nn import losses


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
    curves = workloads.data_parallel_in_subprocess(epochs=2)
    assert curves["replicas"] == 2 and len(curves["devices"]) == 2
    assert curves["one"] == pytest.approx(curves["mirrored"], rel=1e-4)
    assert curves["one"][-1] < curves["one"][0]
