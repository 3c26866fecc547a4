"""Which scalar per sample an explanation explains: a class score, or any function of the output.

A class index explains that class's raw (pre-softmax) output score, as in the Grad-CAM paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Union

import torch

TargetSpec = Union[None, int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def model_output(output: Any) -> torch.Tensor:
    """The tensor to explain from what the model returned.

    A tensor is used as is; for a tuple/list the first element, for a dict the "logits" entry (else the
    first value). To explain another element, pass `targets` as a callable that receives the tensor
    chosen here, or wrap the model so it returns the tensor you want.
    """
    chosen = output
    if isinstance(output, Mapping):
        chosen = output["logits"] if "logits" in output else next(iter(output.values()), None)
    elif isinstance(output, (tuple, list)):
        chosen = output[0] if output else None
    if not isinstance(chosen, torch.Tensor):
        raise TypeError(
            f"cannot explain a model output of type {type(output).__name__}: return a tensor (N, classes),"
            " a tuple whose first element is one, or a dict with a 'logits' tensor"
        )
    return chosen


def predicted_classes(output: torch.Tensor) -> torch.Tensor:
    """argmax over classes per sample (N,)."""
    _check_class_scores(output)
    return output.detach().argmax(dim=1)


def resolve_classes(output: torch.Tensor, targets: TargetSpec) -> torch.Tensor:
    """Class index per sample (N,) for None / int / sequence targets, with range checks."""
    _check_class_scores(output)
    n, num_classes = output.shape[0], output.shape[1]
    if targets is None:
        return predicted_classes(output)
    if isinstance(targets, bool):
        raise TypeError("targets must be None, an int, a sequence of ints, or a callable; got a bool")
    if isinstance(targets, int):
        classes = torch.full((n,), targets, dtype=torch.long, device=output.device)
    else:
        classes = torch.as_tensor(targets, device=output.device)
        if classes.dtype.is_floating_point or classes.dtype == torch.bool:
            raise TypeError(f"target classes must be integers, got dtype {classes.dtype}")
        classes = classes.long().reshape(-1)
        if classes.numel() != n:
            raise ValueError(f"got {classes.numel()} targets for a batch of {n}: give one per sample")
    if bool(((classes < 0) | (classes >= num_classes)).any()):
        bad = classes[(classes < 0) | (classes >= num_classes)][0].item()
        raise ValueError(f"target class {bad} is out of range: the model outputs {num_classes} classes")
    return classes


def target_scores(output: torch.Tensor, targets: TargetSpec) -> torch.Tensor:
    """The (N,) scores to differentiate: chosen class logits, or `targets(output)`."""
    if callable(targets) and not isinstance(targets, torch.Tensor):
        scores = targets(output)
        if not isinstance(scores, torch.Tensor) or scores.shape != (output.shape[0],):
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            raise ValueError(f"a targets callable must return one score per sample, shape (N,); got {got}")
        return scores
    classes = resolve_classes(output, targets)
    return output.gather(1, classes[:, None]).squeeze(1)


def _check_class_scores(output: torch.Tensor) -> None:
    if output.dim() != 2:
        raise ValueError(
            f"class targets need a model output of shape (N, classes), got {tuple(output.shape)}:"
            " pass targets=callable(output) -> (N,) scores for other outputs"
        )
