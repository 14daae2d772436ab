"""Datasets: ModelNet10 (real layout), procedural shapes, scan datasets, synthetic tasks."""
