"""pcfilter_lib: deep learning on point clouds and structured-light scans."""

__version__ = "0.1.0"
