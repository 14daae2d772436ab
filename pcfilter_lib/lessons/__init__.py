"""Code written to teach: small NumPy versions of what Keras does (a convolution as a matrix,
gradient descent and its descendants, sparse convolution, activation functions and their slopes),
each checked against Keras by the tests, and the inputs and counts of two networks that generate
voxels (SurfaceNet's colourised cubes, ScanComplete's voxel groups and levels). The chapters call it
to explain; the networks train and run with ``nn`` and ``models`` instead. Timing reuses the
convolution's counts (``convmath``), so that the FLOPs the benchmarks report are the ones chapter 1
derives."""
