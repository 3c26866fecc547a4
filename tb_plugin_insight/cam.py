"""Class-activation maps (Grad-CAM family): the public module.

The maths lives in `tb_plugin_insight.explain.cam` (explain/ imports nothing from the recording side);
this module re-exports its public names so `from tb_plugin_insight.cam import compute_cam` keeps working.
"""

from __future__ import annotations

from tb_plugin_insight.explain.cam import (
    GRADIENT_METHODS,
    LAYERLESS_METHODS,
    METHODS,
    CamResult,
    cams_from_capture,
    check_methods,
    compute_cam,
    compute_cams,
)

__all__ = [
    "GRADIENT_METHODS",
    "LAYERLESS_METHODS",
    "METHODS",
    "CamResult",
    "cams_from_capture",
    "check_methods",
    "compute_cam",
    "compute_cams",
]
