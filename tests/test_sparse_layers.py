"""The trainable submanifold sparse convolution: its rulebook against the NumPy lesson's, its output
against the NumPy layer and a dense Conv3D at the active sites, training, and saving."""

import keras
import numpy as np
import pytest

from pcfilter_lib.geometry.sparse_grids import submanifold_rules
from pcfilter_lib.lessons import sparse_conv
from pcfilter_lib.nn.sparse_layers import SubmanifoldConv3D


def shell(side: int = 12, seed: int = 0) -> np.ndarray:
    """The integer sites of a sphere's surface in a side^3 grid, in shuffled order."""
    axis = np.arange(side) - (side - 1) / 2
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    radius = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    coords = np.argwhere(np.abs(radius - side / 3) < 0.7)
    return coords[np.random.default_rng(seed).permutation(len(coords))]


def rules_of(coords, kernel=3):
    return [a.astype(np.int32) for a in submanifold_rules(coords, kernel)]


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_the_rules_are_the_lessons_rulebook(kernel):
    coords = shell()
    inputs, outputs, offsets = submanifold_rules(coords, kernel)
    book = sparse_conv.build_rulebook(sparse_conv.SparseVoxels.from_coords(coords), coords, kernel)
    assert sorted(zip(inputs, outputs, offsets, strict=True)) == sorted(
        zip(book.inputs, book.outputs, book.offsets, strict=True))
    assert np.all(np.diff(offsets) >= 0)  # sorted by offset, as the lesson's
    assert (offsets == kernel ** 3 // 2).sum() == len(coords)  # every site meets itself at the centre


def test_bad_sites_are_refused():
    with pytest.raises(ValueError, match="repeat"):
        submanifold_rules(np.array([[0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="integer"):
        submanifold_rules(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="odd"):
        submanifold_rules(np.zeros((3, 3), int), kernel=2)
    with pytest.raises(ValueError, match="odd"):
        SubmanifoldConv3D(4, kernel_size=4)


def test_the_layer_matches_the_numpy_layer_and_a_dense_conv3d_at_the_active_sites():
    coords = shell()
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(coords), 3)).astype(np.float32)
    layer = SubmanifoldConv3D(5, kernel_initializer="random_normal")
    out = keras.ops.convert_to_numpy(layer([features, *rules_of(coords)]))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    lesson, _ = sparse_conv.conv3d(sparse_conv.SparseVoxels.from_coords(coords, features), kernel, bias)
    np.testing.assert_allclose(out, lesson.features, rtol=1e-5, atol=1e-5)
    grid = np.zeros((12, 12, 12, 3), np.float32)
    grid[tuple(coords.T)] = features
    dense = keras.layers.Conv3D(5, 3, padding="same")
    dense.build(grid[None].shape)
    dense.set_weights([kernel, bias])
    expected = keras.ops.convert_to_numpy(dense(grid[None]))[0][tuple(coords.T)]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def sparse_model() -> keras.Model:
    features = keras.Input((1,), name="features")
    rules = [keras.Input((), dtype="int32", name=name) for name in ("inputs", "outputs", "offsets")]
    x = SubmanifoldConv3D(8, activation="relu", name="conv1")([features, *rules])
    x = SubmanifoldConv3D(1, activation="sigmoid", name="conv2")([x, *rules])
    return keras.Model([features, *rules], x)


def test_a_stack_trains_and_saves(tmp_path):
    keras.utils.set_random_seed(0)
    coords = shell()
    rules = rules_of(coords)
    # A target only the neighbourhood tells: is the site on the upper half of the sphere?
    target = (coords[:, 2] > coords[:, 2].mean()).astype(np.float32)[:, None]
    ones = np.ones((len(coords), 1), np.float32)
    model = sparse_model()
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    # One batch is the whole shell: the rules index its rows, so it cannot be cut into batches.
    step = keras.ops.convert_to_numpy
    losses = [float(model.train_on_batch([ones, *rules], target)) for _ in range(60)]
    assert losses[-1] < 0.8 * losses[0]
    path = tmp_path / "sparse.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(step(again([ones, *rules])), step(model([ones, *rules])), rtol=1e-6)
