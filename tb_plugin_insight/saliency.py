"""Input saliency (gradient, SmoothGrad, integrated gradients, ...) and token saliency of text: the public
module.

The maths lives in `tb_plugin_insight.explain.saliency` (explain/ imports nothing from the recording
side); this module re-exports its public names so `from tb_plugin_insight.saliency import
compute_saliency` keeps working.
"""

from __future__ import annotations

from tb_plugin_insight.explain.saliency import (
    IG_RULES,
    INPUT_GRADIENT_METHODS,
    METHODS,
    compute_attribution,
    compute_saliency,
    from_input_gradient,
    gauss_legendre,
    input_gradient_scores,
    saliency_map,
    saliency_map_and_scale,
    shares_input_gradient,
    trapezoid,
)
from tb_plugin_insight.explain.token_saliency import METHODS as TOKEN_METHODS
from tb_plugin_insight.explain.token_saliency import compute_token_saliency

__all__ = [
    "IG_RULES",
    "INPUT_GRADIENT_METHODS",
    "METHODS",
    "compute_attribution",
    "compute_saliency",
    "compute_token_saliency",
    "TOKEN_METHODS",
    "from_input_gradient",
    "gauss_legendre",
    "input_gradient_scores",
    "saliency_map",
    "saliency_map_and_scale",
    "shares_input_gradient",
    "trapezoid",
]
