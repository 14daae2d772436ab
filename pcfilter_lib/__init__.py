"""pcfilter_lib: deep learning on point clouds and structured-light scans.

Importing the package sets two process-wide defaults before TensorFlow can start:

- TensorFlow's pooling (BFC) CPU allocator. Its default CPU allocator gives every large tensor back
  to the system after each step, so training with large activations (PointNet's) pays for fresh pages
  at every step, up to half of the CPU time in the kernel; pooled, the pages are reused.
- oneDNN's CPU kernels. TensorFlow turns them on by itself only on processors with AVX-512 VNNI or
  AMX; elsewhere (AVX2 machines, such as many cloud and laptop CPUs) its own kernels run, and on
  them YOVO (transposed 3D convolutions) trains some thirty times slower, the 3D U-Net four times,
  the 2D U-Net twice as slow; PointNet (matrix products) runs the same.

``benchmarks/training_cpu.py`` measures both. A value the user has set already
(``TF_CPU_ALLOCATOR_USE_BFC=false``, ``TF_ENABLE_ONEDNN_OPTS=0``) is kept. Nothing heavy is imported here.
"""

import os as _os

__version__ = "0.1.0"

CPU_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
_os.environ.setdefault(CPU_ALLOCATOR_VARIABLE, "true")
_os.environ.setdefault(ONEDNN_VARIABLE, "1")
