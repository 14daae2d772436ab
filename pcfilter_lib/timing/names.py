"""What ``pcfilter bench`` can time, by name: the Keras backends and the workloads. Plain constants,
so that the command line's parser offers them without importing NumPy (``workloads`` runs them)."""

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("unet", "pointnet")
# Timed by benchmarks/training_cpu.py only: chapter 8's 3D U-Net and chapter 7's YOVO (images to grids,
# through transposed 3D convolutions), the kernels that depend most on TensorFlow's CPU settings.
CPU_MODELS = (*MODELS, "voxel_unet", "yovo")
