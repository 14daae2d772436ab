"""pcfilter_lib: deep learning on point clouds and structured-light scans.

Importing the package sets three process-wide defaults before TensorFlow or JAX can start:

- TensorFlow's pooling (BFC) CPU allocator. Its default CPU allocator gives every large tensor back
  to the system after each step, so training with large activations (PointNet's) pays for fresh pages
  at every step, up to half of the CPU time in the kernel; pooled, the pages are reused.
- oneDNN's CPU kernels. TensorFlow turns them on by itself only on processors with AVX-512 VNNI or
  AMX; elsewhere (AVX2 machines, such as many cloud and laptop CPUs) its own kernels run, and on
  them YOVO (transposed 3D convolutions) trains some thirty times slower, the 3D U-Net four times,
  the 2D U-Net twice as slow; PointNet (matrix products) runs the same.
- JAX's original ("non-partitionable") threefry random bits. Under the JAX backend every random draw
  of a new shape is compiled, and Keras draws each weight's first values that way; the partitionable
  variant, JAX's default since 0.5, compiles three times slower on a CPU (building the U-Net: 23 s of
  CPU against 5 on two cores). Its purpose, drawing random bits sharded over many devices, is nothing
  this project does; the numbers drawn differ, their distribution does not.

``benchmarks/training_cpu.py`` measures the first two. A value the user has set already
(``TF_CPU_ALLOCATOR_USE_BFC=false``, ``TF_ENABLE_ONEDNN_OPTS=0``, ``JAX_THREEFRY_PARTITIONABLE=1``) is
kept. Nothing heavy is imported here.
"""

import os as _os

__version__ = "0.1.0"

CPU_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
JAX_RANDOM_VARIABLE = "JAX_THREEFRY_PARTITIONABLE"
_os.environ.setdefault(CPU_ALLOCATOR_VARIABLE, "true")
_os.environ.setdefault(ONEDNN_VARIABLE, "1")
_os.environ.setdefault(JAX_RANDOM_VARIABLE, "0")
