"""The two-pathway CNN of Havaei et al. (2017) for brain-tumour segmentation, TwoPathCNN.

Both pathways read the same patch, 33x33 pixels of four MRI modalities in the paper, and label
its centre pixel. The *local* pathway stacks two small convolutions, 7x7 and 3x3, each followed
by a max pooling with stride 1 (4x4, then 2x2), for the fine detail around the pixel; the *global*
pathway has one large 13x13 convolution. Both end at the same size, 21x21 for a 33x33 patch, and
their feature maps are concatenated. The last layer is a convolution as large as those maps, which
is a dense classifier written as a convolution: on a patch it gives one vector of class scores, on
a larger image a map of them, one per patch the image holds, computed in one pass.

The convolutions use maxout: ``pieces`` convolutions with the same shape see the same input, and
each output value is the largest of their values there. Written with ``layers.Maximum`` over
standard convolutions, so a saved model loads with ``keras.models.load_model`` alone.
"""

from __future__ import annotations

import keras
from keras import layers

LOCAL_KERNELS = (7, 3)  # the local pathway's convolutions
LOCAL_POOLS = (4, 2)  # the max pooling (stride 1) after each of them
GLOBAL_KERNEL = 13


def maxout_conv(x, filters: int, kernel: int, pieces: int, name: str):
    """A convolution with maxout: the element-wise maximum of ``pieces`` valid convolutions.

    Args:
        x: the feature map, (B, H, W, C).
        filters: output channels of each piece and of the result.
        kernel: side of the square kernels, in pixels.
        pieces: how many convolutions the maximum is taken over (1: a plain linear convolution).
        name: prefix of the layers' names; the pieces are ``{name}_piece{i}``.

    Returns:
        (B, H - kernel + 1, W - kernel + 1, filters) features.
    """
    convs = [layers.Conv2D(filters, kernel, name=f"{name}_piece{i}")(x) for i in range(1, pieces + 1)]
    return convs[0] if pieces == 1 else layers.Maximum(name=f"{name}_maxout")(convs)


def build_two_pathway_cnn(input_channels: int = 4, num_classes: int = 5, patch: int = 33,
                          local_filters: int = 64, global_filters: int = 160, pieces: int = 2,
                          size: int | None = None, name: str = "two_pathway_cnn") -> keras.Model:
    """Build TwoPathCNN: a local and a global pathway, concatenated, and a convolutional classifier.

    Args:
        input_channels: channels of the input (4 MRI modalities in the paper).
        num_classes: classes of the softmax output (5 in the paper: healthy tissue and four kinds
            of tumour tissue).
        patch: side of the patch one output reads, in pixels; the classifier's kernel is
            ``patch - 12``, the side of the pathways' maps on such a patch.
        local_filters: channels of both local convolutions.
        global_filters: channels of the global convolution.
        pieces: maxout pieces per convolution.
        size: side of the square input; None for any size of at least ``patch``.
        name: the model's name.

    Returns:
        A functional ``keras.Model`` from (B, n, n, input_channels) to class probabilities
        (B, n - patch + 1, n - patch + 1, num_classes): (B, 1, 1, num_classes) on one patch.

    Raises:
        ValueError: ``patch`` is 13 or less (nothing left for the classifier), ``size`` is smaller
            than ``patch``, or a count is smaller than 1.
    """
    if patch <= GLOBAL_KERNEL:
        raise ValueError(f"patch must be larger than {GLOBAL_KERNEL}, got {patch}")
    if size is not None and size < patch:
        raise ValueError(f"size must be at least patch = {patch}, got {size}")
    if min(input_channels, num_classes, local_filters, global_filters, pieces) < 1:
        raise ValueError("input_channels, num_classes, the filters and pieces must be >= 1")
    inputs = keras.Input((size, size, input_channels), name="patch")
    x = inputs
    for i, (kernel, pool) in enumerate(zip(LOCAL_KERNELS, LOCAL_POOLS, strict=True), start=1):
        x = maxout_conv(x, local_filters, kernel, pieces, name=f"local{i}")
        x = layers.MaxPooling2D(pool, strides=1, name=f"local{i}_pool")(x)
    context = maxout_conv(inputs, global_filters, GLOBAL_KERNEL, pieces, name="global1")
    x = layers.Concatenate(name="pathways")([x, context])
    outputs = layers.Conv2D(num_classes, patch - GLOBAL_KERNEL + 1, activation="softmax", dtype="float32",
                            name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)
