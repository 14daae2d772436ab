"""``viz.plot_tile_tasks`` draws a cloud's tiles, one coloured group per tile with points, and the task
graph with one task per tile."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PathCollection

from pcfilter_lib import viz
from pcfilter_lib.filters.tile_store import TileGrid


def test_one_coloured_group_and_one_task_per_tile():
    rng = np.random.default_rng(0)
    # Two square patches far apart in a 3 x 1 grid: the middle cell holds no point.
    xyz = np.concatenate([rng.uniform([0, 0, 0], [1, 1, 0.1], (500, 3)),
                          rng.uniform([2, 0, 0], [3, 1, 0.1], (500, 3))])
    grid = TileGrid.cover(xyz.min(0), xyz.max(0), len(xyz), 300)
    tiles = np.unique(grid.cells(xyz))
    assert 0 < len(tiles) < grid.shape[0] * grid.shape[1]  # some cells are empty

    fig = viz.plot_tile_tasks(xyz, grid, int(tiles[0]), margin=0.1)
    top, graph = fig.axes
    groups = [c for c in top.collections if isinstance(c, PathCollection)]
    assert len(groups) == len(tiles)
    colours = {tuple(np.round(g.get_facecolor()[0], 3)) for g in groups}
    assert len(colours) == len(tiles)
    assert sum(len(g.get_offsets()) for g in groups) == len(xyz)
    task_labels = {t.get_text() for t in graph.texts}
    assert {str(t) for t in tiles} <= task_labels
    assert len(top.patches) == 2  # the tile's box and its halo
    plt.close(fig)
