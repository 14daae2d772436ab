"""A structured-light scanner simulator: bins of parts (``scene``), the scanner and its settings
(``scanner``), how each artefact arises (``artefacts``), one scan stage by stage (``measurement``) and
datasets of scans (``dataset``).

The world frame has z up with the bin floor's top at z = 0; lengths are metres.
"""

from pcfilter_lib.labels import KIND_NAMES
from pcfilter_lib.simulate.measurement import simulate_scan, simulate_view, viewpoint
from pcfilter_lib.simulate.scanner import ScannerConfig
from pcfilter_lib.simulate.scene import Scene, make_scene, semantic_image

__all__ = ["KIND_NAMES", "ScannerConfig", "Scene", "make_scene", "semantic_image", "simulate_scan", "simulate_view",
           "viewpoint"]
