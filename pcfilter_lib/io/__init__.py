"""File formats and safe file handling: atomic writes, dataset manifests, scans, meshes, clouds."""
