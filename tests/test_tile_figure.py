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


def test_top_view_puts_x_across_whichever_axis_the_grid_cuts_first():
    # A cloud three times wider in y than in x: the grid cuts y first, the map still reads x across.
    rng = np.random.default_rng(1)
    xyz = rng.uniform([0, 0, 0], [1, 3, 0.1], (900, 3))
    grid = TileGrid.cover(xyz.min(0), xyz.max(0), len(xyz), 300)
    assert grid.axes == (1, 0)
    cell = int(np.unique(grid.cells(xyz))[-1])
    fig = viz.plot_tile_tasks(xyz, grid, cell, margin=0.05)
    top = fig.axes[0]
    assert (top.get_xlabel(), top.get_ylabel()) == ("x (m)", "y (m)")
    drawn = np.concatenate([c.get_offsets() for c in top.collections if isinstance(c, PathCollection)])
    assert drawn[:, 0].max() <= 1.0 and drawn[:, 1].max() > 2.0  # x across, y up
    # The tile's box encloses exactly its own points in the drawn coordinates.
    box = top.patches[0]
    (x0, y0), width, height = box.get_xy(), box.get_width(), box.get_height()
    mine = xyz[grid.cells(xyz) == cell]
    assert np.all((mine[:, 0] >= x0 - 1e-9) & (mine[:, 0] <= x0 + width + 1e-9))
    assert np.all((mine[:, 1] >= y0 - 1e-9) & (mine[:, 1] <= y0 + height + 1e-9))
    plt.close(fig)
