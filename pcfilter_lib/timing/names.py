"""What ``pcfilter bench`` can time, by name: the Keras backends and the workloads. Plain constants,
so that the command line's parser offers them without importing NumPy (``workloads`` runs them)."""

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("unet", "pointnet")
