"""A text probe: fixed token sequences explained over training, and the token strings the tab shows.

`watch(probe=...)` and `set_probe` take a text probe in any of these forms (the rest are image probes):

* a dict of model inputs with an `input_ids` entry (`attention_mask`, `token_type_ids`, ... passed on
  as they are; a HuggingFace `BatchEncoding` is such a dict), its labels under a `labels` key (taken
  out: the model is called without them) or given apart, as `(inputs_dict, labels)`;
* token ids as an integer tensor (N, L), alone or as `(token_ids, labels)`: the model is called as
  `model(token_ids)`.

Labels are one integer per sequence: the class of a sequence classifier, the next token of a language
model. `token_names=` (one list of L strings per sequence) or `tokenizer=` (anything with
`convert_ids_to_tokens`) name the tokens; without either the ids are shown.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import torch

from tb_plugin_insight.capture.probe import Probe, make_probe

IDS_KEY = "input_ids"
MASK_KEY = "attention_mask"
LABELS_KEY = "labels"


@dataclasses.dataclass
class TextProbe:
    """Token sequences explained at every token-saliency step (`ids`/`mask` (N, L) on the CPU)."""

    name: str
    inputs: Any  # dict of model inputs (CPU tensors and other values), or the (N, L) ids tensor
    ids: torch.Tensor  # (N, L) int64
    mask: torch.Tensor  # (N, L) int64, 1 for real tokens (all ones without an attention mask)
    labels: Optional[torch.Tensor]  # (N,) int64 or None
    tokens: list[list[str]]
    class_names: tuple[str, ...] = ()
    tokenizer: Any = None
    _on_device: dict[torch.device, Any] = dataclasses.field(default_factory=dict, repr=False)

    def on(self, device: torch.device) -> Any:
        """The model inputs on `device`, copied once per device (models may move after watch())."""
        if device not in self._on_device:
            if isinstance(self.inputs, Mapping):
                self._on_device[device] = {
                    k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.inputs.items()
                }
            else:
                self._on_device[device] = self.inputs.to(device)
        return self._on_device[device]

    def call(self, model: torch.nn.Module, device: torch.device) -> Any:
        """One forward of the probe, as the model takes it: `model(**inputs)` or `model(ids)` (the one way a
        probe pass runs a text probe)."""
        inputs = self.on(device)
        return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)

    def token_name(self, token_id: int) -> str:
        """A token id's string: the tokenizer's, else the name it has in the probe, else `#id`."""
        if self.tokenizer is not None:
            try:
                return str(self.tokenizer.convert_ids_to_tokens([int(token_id)])[0])
            except Exception:  # noqa: BLE001 - an id the tokenizer does not know is shown by number
                return f"#{int(token_id)}"
        for row_ids, row_tokens in zip(self.ids.tolist(), self.tokens):
            for i, t in zip(row_ids, row_tokens):
                if i == token_id:
                    return t
        return f"#{int(token_id)}"

    def pad_token_id(self) -> Optional[int]:
        """The tokenizer's pad token id (None without a tokenizer or a pad token)."""
        value = getattr(self.tokenizer, "pad_token_id", None)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    def fingerprint(self) -> str:
        """Changes when the shown sequences change: decides whether the tokens are stored again."""
        text = json.dumps([self.ids.tolist(), self.mask.tolist(), self.tokens, self.class_names])
        return hashlib.sha1(text.encode("utf-8")).hexdigest()


def is_text_probe(value: Any) -> bool:
    """Whether a probe argument is text: a dict with `input_ids`, integer token ids (N, L), or a pair of
    either with labels."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and not isinstance(value[0], (tuple, list)):
        value = value[0]
    if isinstance(value, Mapping):
        return IDS_KEY in value
    return isinstance(value, torch.Tensor) and value.dim() == 2 and _is_integer(value)


def split_probe(value: Any) -> tuple[Any, Any]:
    """(inputs, labels) of a probe argument: a pair, a dict with a `labels` entry, or inputs alone."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"a probe given as a tuple must be (inputs, labels), got {len(value)} elements")
        return value[0], value[1]
    if isinstance(value, Mapping) and LABELS_KEY in value:
        return {k: v for k, v in value.items() if k != LABELS_KEY}, value[LABELS_KEY]
    return value, None


def make_any_probe(
    name: str,
    inputs: Any,
    labels: Any = None,
    *,
    class_names: Optional[Sequence[str]] = None,
    display: Any = None,
    token_names: Optional[Sequence[Sequence[str]]] = None,
    tokenizer: Any = None,
) -> Union[Probe, TextProbe]:
    """`set_probe`'s probe: a text probe (a dict, or integer token ids (N, L)), else an image probe.

    Raises:
        TypeError / ValueError: from the probe's checks; `display=` with a text probe, or
            `token_names=`/`tokenizer=` with images.
    """
    if is_text_probe(inputs) or isinstance(inputs, Mapping):
        if display is not None:
            raise ValueError("display= shows image probes; a text probe shows its tokens (token_names=)")
        return make_text_probe(
            name, inputs, labels, token_names=token_names, tokenizer=tokenizer, class_names=class_names
        )
    if token_names is not None or tokenizer is not None:
        raise ValueError(
            "token_names=/tokenizer= name the tokens of a text probe (a dict with input_ids, or integer"
            " token ids (N, L)); this probe is images"
        )
    return make_probe(name, inputs, labels, class_names=class_names, display=display)


def split_any_probe(value: Any) -> tuple[Any, Any]:
    """(inputs, labels) of watch()'s `probe=`: a text probe's (`split_probe`), or (images, labels)."""
    if is_text_probe(value):
        return split_probe(value)
    if isinstance(value, (tuple, list)):
        images, labels = value  # as watch() always took it
        return images, labels
    return value, None


def check_without_probe(token_names: Any = None, tokenizer: Any = None) -> None:
    """watch() without `probe=`: token names have nothing to name.

    Raises:
        ValueError: `token_names=` or `tokenizer=` given.
    """
    if token_names is not None or tokenizer is not None:
        raise ValueError("token_names=/tokenizer= need a text probe: pass probe= with them")


def make_text_probe(
    name: str,
    inputs: Any,
    labels: Any = None,
    *,
    token_names: Optional[Sequence[Sequence[str]]] = None,
    tokenizer: Any = None,
    class_names: Optional[Sequence[str]] = None,
) -> TextProbe:
    """Validate a text probe and name its tokens.

    Raises:
        TypeError / ValueError: inputs without integer `input_ids` (N, L), labels that are not one
            integer per sequence, token names of the wrong shape, both `token_names` and `tokenizer`,
            a tokenizer without `convert_ids_to_tokens`; each message says what to pass instead.
    """
    if isinstance(inputs, Mapping) and LABELS_KEY in inputs:
        if labels is not None:
            raise ValueError("the probe has labels twice: in its 'labels' entry and given apart; keep one")
        inputs, labels = split_probe(inputs)
    ids = _checked_ids(inputs)
    n, length = ids.shape
    cpu_inputs: Any
    if isinstance(inputs, Mapping):
        cpu_inputs = {k: _to_cpu(k, v, n) for k, v in inputs.items()}
        mask = cpu_inputs.get(MASK_KEY)
        if mask is not None and (not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (n, length)):
            got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(
                f"probe attention_mask must be a tensor of shape {(n, length)} like input_ids, got {got}"
            )
    else:
        cpu_inputs, mask = ids.clone(), None
    mask = torch.ones_like(ids) if mask is None else (mask != 0).long()
    return TextProbe(
        name,
        cpu_inputs,
        ids,
        mask,
        _checked_labels(labels, n),
        _tokens(ids, token_names, tokenizer),
        tuple(str(c) for c in class_names) if class_names is not None else (),
        tokenizer,
    )


def _is_integer(tensor: torch.Tensor) -> bool:
    return not tensor.dtype.is_floating_point and not tensor.dtype.is_complex and tensor.dtype != torch.bool


def _checked_ids(inputs: Any) -> torch.Tensor:
    if isinstance(inputs, Mapping):
        if IDS_KEY not in inputs:
            keys = ", ".join(repr(k) for k in inputs) or "none"
            raise ValueError(
                f"a text probe given as a dict needs an 'input_ids' entry (keys given: {keys});"
                " models fed inputs_embeds cannot take a text probe"
            )
        ids = inputs[IDS_KEY]
    else:
        ids = inputs
    if not isinstance(ids, torch.Tensor) or not _is_integer(ids) or ids.dim() != 2 or ids.numel() == 0:
        got = f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(
            f"text probe input_ids must be a non-empty integer tensor (N, L) of token ids, got {got};"
            " add a batch dimension with ids.unsqueeze(0)"
        )
    return ids.detach().to("cpu").long().clone()


def _to_cpu(key: str, value: Any, n: int) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    if value.dim() == 0 or value.shape[0] != n:
        raise ValueError(
            f"probe input {key!r} has shape {tuple(value.shape)}: every tensor input needs the batch"
            f" dimension of input_ids first ({n} sequences)"
        )
    return value.detach().to("cpu").clone()


def _checked_labels(labels: Any, n: int) -> Optional[torch.Tensor]:
    if labels is None:
        return None
    tensor = torch.as_tensor(labels).detach().to("cpu")
    if tensor.dim() == 2 and tensor.shape[0] == n:
        raise ValueError(
            f"text probe labels must be one integer per sequence ({n},): the class of a classifier or the"
            f" next token id of a language model; got per-token labels of shape {tuple(tensor.shape)}"
            " (for a language model pass the token that should follow each sequence)"
        )
    tensor = tensor.reshape(-1)
    if not _is_integer(tensor) or tensor.numel() != n:
        raise ValueError(
            f"text probe labels must be {n} integers (one per sequence), got {tensor.numel()} of dtype"
            f" {tensor.dtype}"
        )
    return tensor.long()


def _tokens(
    ids: torch.Tensor, token_names: Optional[Sequence[Sequence[str]]], tokenizer: Any
) -> list[list[str]]:
    n, length = ids.shape
    if token_names is not None and tokenizer is not None:
        raise ValueError("give token_names= or tokenizer=, not both: both name the tokens")
    if tokenizer is not None:
        convert = getattr(tokenizer, "convert_ids_to_tokens", None)
        if not callable(convert):
            raise TypeError(
                f"tokenizer= needs a convert_ids_to_tokens method (a HuggingFace tokenizer), got"
                f" {type(tokenizer).__name__}; or pass token_names= (a list of token strings per sequence)"
            )
        return [[str(t) for t in convert(row)] for row in ids.tolist()]
    if token_names is None:
        return [[str(i) for i in row] for row in ids.tolist()]
    if isinstance(token_names, str) or len(token_names) != n:
        raise ValueError(f"token_names must be {n} lists (one per probe sequence) of {length} strings each")
    rows = []
    for i, row in enumerate(token_names):
        if isinstance(row, str) or len(row) != length:
            got = "a string" if isinstance(row, str) else f"{len(row)} names"
            raise ValueError(
                f"token_names[{i}] must be a list of {length} token strings (one per position, padding"
                f" included), got {got}"
            )
        rows.append([str(t) for t in row])
    return rows
