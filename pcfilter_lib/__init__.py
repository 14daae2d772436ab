"""pcfilter_lib: deep learning on point clouds and structured-light scans.

Importing the package sets one process-wide default before TensorFlow can start: TensorFlow's pooling
(BFC) CPU allocator. Its default CPU allocator gives every large tensor back to the system after each
step, so training with large activations (PointNet's) pays for fresh pages at every step, up to half
of the CPU time in the kernel; pooled, the pages are reused. ``benchmarks/training_cpu.py`` measures
both. A value the user has set already (``TF_CPU_ALLOCATOR_USE_BFC=false``) is kept. Nothing heavy is
imported here.
"""

import os as _os

__version__ = "0.1.0"

CPU_ALLOCATOR_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"
_os.environ.setdefault(CPU_ALLOCATOR_VARIABLE, "true")
