"""Figures and tables for the book, one module per kind; every public name is re-exported here, so that
a chapter writes ``viz.show_images(...)`` whichever module holds it.

- ``figures``: Matplotlib figures of matrices, images, clouds, a U-Net's shape, confusion matrices,
  weight histograms, octree slices, a scan's channels, filter outcomes and a cloud's tiles with the
  task graph of SOR on them. A one-panel function draws into a given ``ax`` (or a new figure when
  ``ax`` is None), so that chapters compose panels freely.
- ``training``: Matplotlib curves of training runs, threshold sweeps and transfer strategies.
- ``interactive``: Plotly 3D figures (scans, clouds, meshes, voxels, filter outcomes) and
  ``setup_plotly``, which makes them show in notebooks and in the built book.
- ``tables``: ``Table`` for notebook outputs and scripts, and the tables of filter and transfer results.
- ``colours``: the colours all of them share, and the split of a scan's points by a filter's outcome.
"""

from pcfilter_lib.viz.colours import LABEL_HEX, OUTCOME_COLOURS, OUTCOME_NAMES, outcomes
from pcfilter_lib.viz.figures import (
    draw_unet,
    outcome_image,
    plain_log_ticks,
    plot_class_confusion,
    plot_confusion,
    plot_growth,
    plot_octree_slice,
    plot_tile_tasks,
    plot_weight_histograms,
    show_clouds,
    show_filter_masks,
    show_images,
    show_matrix,
    show_scan_channels,
)
from pcfilter_lib.viz.interactive import (
    cloud_trace,
    figure_3d,
    mesh_trace,
    outcome_figure_3d,
    plot_critical_points,
    scan_figure_3d,
    setup_plotly,
    voxel_trace,
)
from pcfilter_lib.viz.tables import FILTER_METRICS, Table, filter_table, markdown_table, strategy_table
from pcfilter_lib.viz.training import plot_histories, plot_strategies, plot_threshold_sweep, plot_training_curves

__all__ = ["FILTER_METRICS", "LABEL_HEX", "OUTCOME_COLOURS", "OUTCOME_NAMES", "Table", "cloud_trace", "draw_unet",
           "figure_3d", "filter_table", "markdown_table", "mesh_trace", "outcome_figure_3d", "outcome_image",
           "outcomes", "plain_log_ticks", "plot_class_confusion", "plot_confusion", "plot_critical_points",
           "plot_growth",
           "plot_histories", "plot_octree_slice", "plot_strategies", "plot_threshold_sweep", "plot_tile_tasks",
           "plot_training_curves", "plot_weight_histograms", "scan_figure_3d", "setup_plotly", "show_clouds",
           "show_filter_masks", "show_images", "show_matrix", "show_scan_channels", "strategy_table", "voxel_trace"]
