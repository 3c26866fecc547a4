"""The Grad-CAM family as tensor formulas, and the shared steps: lay a layer out spatially; ReLU/resize/scale.

Notation: A is the target layer's activation (N, C, h, w), G = dS/dA the gradient of the explained raw
score S (one per sample) with respect to it, sums over "hw" run over the h*w positions. Every method gives a
map (N, h, w) before ReLU; `finish` then applies ReLU, bilinear resizing to the input and per-image min-max
scaling, the same for all methods.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tb_plugin_insight.explain import layouts

Tensor = torch.Tensor
ReshapeTransform = Callable[[Tensor], Tensor]


def weighted_sum(weights: Tensor, activation: Tensor) -> Tensor:
    """sum_c weights[n, c] * A[n, c] -> (N, h, w)."""
    return torch.einsum("nc,nchw->nhw", weights, activation)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, and 0 where the denominator is 0."""
    nonzero = denominator != 0
    safe = torch.where(nonzero, denominator, torch.ones_like(denominator))
    return torch.where(nonzero, numerator / safe, 0.0)


def gradcam(a: Tensor, g: Tensor) -> Tensor:
    """Grad-CAM (Selvaraju et al., 2017): channel weights w_c = mean_hw G_c; map = sum_c w_c A_c."""
    return weighted_sum(g.mean(dim=(2, 3)), a)


def hirescam(a: Tensor, g: Tensor) -> Tensor:
    """HiResCAM (Draelos & Carin, 2020): map = sum_c G_c * A_c, element-wise (no spatial averaging)."""
    return (g * a).sum(dim=1)


def gradcam_plus_plus(a: Tensor, g: Tensor) -> Tensor:
    """Grad-CAM++ (Chattopadhay et al., 2018), in the paper's closed form for an exponentiated score.

    With Y = exp(S), the second and third derivatives of Y are exp(S) G^2 and exp(S) G^3 (S piecewise
    linear in A), and the exp(S) factors cancel in

        alpha_c(x) = G_c(x)^2 / (2 G_c(x)^2 + sum_hw(A_c) * G_c(x)^3)    (0 where the denominator is 0)
        w_c = sum_hw alpha_c(x) * ReLU(G_c(x));  map = sum_c w_c A_c.

    The weights of the paper carry a further positive factor exp(S) per image, removed by the per-image
    scaling in `finish`.
    """
    g2 = g * g
    denominator = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g
    alpha = _safe_divide(g2, denominator)
    return weighted_sum((alpha * F.relu(g)).sum(dim=(2, 3)), a)


def xgradcam(a: Tensor, g: Tensor) -> Tensor:
    """XGrad-CAM (Fu et al., 2020): w_c = sum_hw(G_c * A_c) / sum_hw(A_c) (0 if that sum is 0).

    The paper derives it for non-negative activations (after a ReLU); on signed activations a channel
    whose values nearly cancel gets a very large weight.
    """
    return weighted_sum(_safe_divide((g * a).sum(dim=(2, 3)), a.sum(dim=(2, 3))), a)


def layercam(a: Tensor, g: Tensor) -> Tensor:
    """LayerCAM (Jiang et al., 2021): element-wise weights ReLU(G_c(x)); map = sum_c ReLU(G_c) * A_c."""
    return (F.relu(g) * a).sum(dim=1)


def first_component_projection(m: Tensor) -> Tensor:
    """Projection of each image's (hw x C) matrix on its first right singular vector -> (N, h, w).

    As in the Eigen-CAM paper the matrix is not centred. A singular vector's sign is arbitrary, so it is
    chosen to make the projection's dot product with the channel-mean map sum_c M_c / C non-negative, i.e.
    the map correlates positively with the mean of what was factorised. (This equals choosing the singular
    vector whose channel loadings sum to a positive number.)

    Only the first component is needed, so it comes from the smaller Gram matrix (hw x hw or C x C, see
    `top_eigenvectors`) rather than a full SVD, which costs seconds on token layers (196 x 768 per image).
    """
    n, c, h, w = m.shape
    rows = m.reshape(n, c, h * w).transpose(1, 2)  # (N, hw, C)
    if h * w <= c:
        gram = rows @ rows.transpose(1, 2)  # (N, hw, hw): its top eigenvector is the projection's direction
        u = top_eigenvectors(gram)
        strength = (u[:, None, :] @ gram.double() @ u[:, :, None]).reshape(n, 1).clamp_min(0).sqrt()
        projection = (strength * u).to(rows.dtype)
    else:
        v = top_eigenvectors(rows.transpose(1, 2) @ rows)  # (N, C)
        projection = (rows @ v.to(rows.dtype)[:, :, None]).squeeze(2)
    agreement = (projection * rows.mean(dim=2)).sum(dim=1, keepdim=True)
    projection = torch.where(agreement < 0, -projection, projection)
    return projection.reshape(n, h, w)


def top_eigenvectors(gram: Tensor, *, tol: float = 1e-9, power_iterations: int = 64) -> Tensor:
    """Unit eigenvector of the largest eigenvalue of each symmetric PSD matrix (B, d, d), float64.

    Small matrices (d <= 64) get an exact `torch.linalg.eigh`. Larger ones try power iteration first:
    deterministic (it starts from K @ 1, close to the answer for non-negative activations, plus a small
    fixed ramp; no random numbers), and converged in a few steps when the first component dominates, as it
    does for activations after a ReLU. Those where it has not converged after `power_iterations` steps
    (small eigengap, common for signed data) fall back to `eigh`. With a tie for the largest eigenvalue
    the component is not unique, and any unit vector of that eigenspace may come back.
    """
    gram = gram.double()
    if gram.shape[-1] <= 64:
        return torch.linalg.eigh(gram).eigenvectors[:, :, -1]
    ramp = torch.linspace(1.0, 2.0, gram.shape[-1], dtype=gram.dtype, device=gram.device)
    v = _unit(_unit(gram.sum(dim=2)) + 1e-3 * _unit(ramp.expand(gram.shape[0], -1)))
    change = torch.full((gram.shape[0],), math.inf, dtype=gram.dtype, device=gram.device)
    for step in range(power_iterations):
        nxt = _unit((gram @ v[:, :, None]).squeeze(2))
        change = (nxt - v).abs().amax(dim=1)
        v = nxt
        if step % 8 == 7 and bool((change <= tol).all()):
            break
    slow = (change > tol).nonzero().squeeze(1)
    if slow.numel():
        v[slow] = torch.linalg.eigh(gram[slow]).eigenvectors[:, :, -1]
    return v


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def eigencam(a: Tensor, g: Optional[Tensor] = None) -> Tensor:
    """Eigen-CAM (Muhammad & Yeasin, 2020): A projected on its first principal component; no gradient."""
    return first_component_projection(a)


def eigengradcam(a: Tensor, g: Tensor) -> Tensor:
    """Eigen-Grad-CAM: the same projection applied to G * A (the sign agrees with the HiResCAM map)."""
    return first_component_projection(g * a)


def scorecam_weights(masked_scores: Tensor) -> Tensor:
    """Score-CAM (Wang et al., 2020): softmax over channels of the scores of the masked inputs (N, C).

    Subtracting the paper's baseline score (one number per image) does not change a softmax, so it is
    left out.
    """
    return torch.softmax(masked_scores, dim=1)


def ablationcam_weights(scores: Tensor, ablated_scores: Tensor) -> Tensor:
    """Ablation-CAM (Desai & Ramaswamy, 2020): w_c = (S - S_c) / S, S_c the score with channel c zeroed.

    Where S is 0 the differences S - S_c are used unscaled.
    """
    scores = scores[:, None]
    return (scores - ablated_scores) / torch.where(scores != 0, scores, torch.ones_like(scores))


#: Methods computed from one activation + gradient capture: name -> (A, G) -> map (N, h, w).
FROM_CAPTURE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "gradcam": gradcam,
    "hirescam": hirescam,
    "gradcam++": gradcam_plus_plus,
    "xgradcam": xgradcam,
    "layercam": layercam,
    "eigencam": eigencam,
    "eigengradcam": eigengradcam,
}
GRADIENT_METHODS: frozenset[str] = frozenset(FROM_CAPTURE) - {"eigencam"}


def finish(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """ReLU, bilinear resize to `size` (align_corners=False), then min-max scale each image to [0, 1].

    Scaling comes after resizing so that every non-constant map reaches exactly 0 and 1. A constant map
    (in particular an all-zero one) becomes all zeros.
    """
    return scale_to_unit_(resize(F.relu(cam.float()), size))


def resize(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize (as F.interpolate, align_corners=False) of (B, h, w) maps to (B, *size).

    Bilinear interpolation is separable, so it is done as two small matrix products with the 1-D
    interpolation matrices; that is several times faster than F.interpolate when enlarging many small maps.
    """
    (h, w), (out_h, out_w) = maps.shape[-2:], size
    if (h, w) == (out_h, out_w):
        return maps
    rows = _interpolation_matrix(h, out_h, maps.dtype, maps.device)  # (out_h, h)
    cols = _interpolation_matrix(w, out_w, maps.dtype, maps.device)  # (out_w, w)
    return rows @ maps @ cols.T


def _interpolation_matrix(n_in: int, n_out: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n_out, n_in) matrix of 1-D linear interpolation weights, taken from F.interpolate itself."""
    eye = torch.eye(n_in, dtype=dtype, device=device)[:, None, :]  # n_in unit signals of length n_in
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0, :].T


def scale_to_unit_(maps: Tensor) -> Tensor:
    """Min-max scale each (h, w) map of (B, h, w) to [0, 1], in place; a constant map becomes all zeros.

    In place because the maps are large (upsampled) and freshly made by the caller: it saves a pass and
    an allocation per call.
    """
    low, high = torch.aminmax(maps.flatten(1), dim=1)
    span = (high - low)[:, None, None]
    # Rounding is monotonic, so 0 <= x - low <= high - low and the quotient stays in [0, 1] with no clamp;
    # a constant map is all zeros after subtracting its minimum, and dividing it by 1 keeps it so.
    return maps.sub_(low[:, None, None]).div_(torch.where(span > 0, span, 1.0))


def spatial_transform(
    shape: tuple[int, ...],
    layer_name: str,
    reshape_transform: Optional[ReshapeTransform],
    *,
    layout: Optional[str] = None,
    image: Optional[tuple[int, int]] = None,
    module: Optional[nn.Module] = None,
) -> ReshapeTransform:
    """The function that turns the layer's output (and its gradient) into (N, C, h, w): see
    `explain.layouts.spatial_transform` (channels first or last, token grids after class/register
    tokens, or `reshape_transform`, which must only rearrange elements)."""
    return layouts.spatial_transform(
        shape, layer_name, reshape_transform, layout=layout, image=image, module=module
    )


def channel_elements(sample_shape: tuple[int, ...], spatial: ReshapeTransform) -> Tensor:
    """(C, h*w) flat indices, within one sample's raw layer output, of the elements of each channel.

    Found by passing element numbers through the spatial transform, so it follows any rearrangement.
    """
    numel = math.prod(sample_shape)
    numbers = torch.arange(numel, dtype=torch.float64).reshape(1, *sample_shape)
    traced = spatial(numbers)[0]
    flat = traced.reshape(traced.shape[0], -1)
    index = flat.round().long()
    valid = bool((flat == index.double()).all()) and bool(((index >= 0) & (index < numel)).all())
    if not valid or index.unique().numel() != index.numel():
        raise ValueError(
            "ablationcam needs a reshape_transform that only rearranges elements (select, reshape,"
            " permute), so that each channel of its result is a set of elements of the layer output"
        )
    return index
