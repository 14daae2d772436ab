"""Neural network models, built with the Keras functional API and keras.ops.

Importing this package imports every library module that registers custom objects with Keras, so
that ``keras.models.load_model(path)`` reads any model pcfilter saved (the shipped ones in
``pcfilter_lib/weights/`` among them) after ``import pcfilter_lib.models`` alone. A new module with a
``keras.saving.register_keras_serializable`` class belongs on the lists below
(``tests/test_shipped_models.py`` checks that it is). ``saved.load_saved_model`` is the library's
loader of model files.
"""

from pcfilter_lib.models import (
    completion,
    dgcnn,
    kpconv,
    mvcnn,
    octree_decoder,
    pointnet,
    pointnet2,
    punet,
    saved,
    scene_cnn,
    unet,
    voxnet,
    yovo,
)
from pcfilter_lib.nn import activations, keras_metrics, losses, optimizers, sparse_layers  # noqa: F401  (for their registrations)

__all__ = ["completion", "dgcnn", "kpconv", "mvcnn", "octree_decoder", "pointnet", "pointnet2", "punet", "saved",
           "scene_cnn", "unet", "voxnet", "yovo"]
