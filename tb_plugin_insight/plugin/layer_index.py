"""Which layers a run has and where their records are: v1 per-layer tags and v2 layer tables.

v1 (metadata version 0) stores each layer under its own tag with its own metadata; v2 stores one
[layers, fields] tensor per step under a layer-table tag whose metadata lists the layers (summary.py).
Both are reduced here to one `LayerSource` per layer: the layer described as v1 metadata (so the
queries treat both alike) and the parts holding its records, a tag and the layer's row in it. A run
written partly by each (a run continued after an upgrade), or whose watched layers changed (a new
layer-table tag), gives a layer several parts; the tables merge them by step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any

from tb_plugin_insight import metadata

V1 = -1  # Part.row of a v1 tag: each record is the layer's own vector


@functools.lru_cache(maxsize=65536)
def parse(content: bytes) -> metadata.PluginData | None:
    """A series' plugin metadata, None when damaged or newer than this reader (cached per content)."""
    return metadata.parse_plugin_metadata(content)


@dataclasses.dataclass(frozen=True)
class Part:
    """Records of one layer: `tag`'s records, whole (row V1) or their row `row` of `rows` rows."""

    tag: str
    row: int
    rows: int
    series: Any  # the listed time series (max_step, max_wall_time)


@dataclasses.dataclass(frozen=True)
class LayerSource:
    """One layer of a run: its metadata as a v1 record would carry it, and where its records are."""

    data: metadata.PluginData
    parts: tuple[Part, ...]

    @property
    def max_step(self) -> int:
        return max(int(p.series.max_step) for p in self.parts)

    @property
    def max_wall_time(self) -> float:
        return max(float(p.series.max_wall_time) for p in self.parts)

    @property
    def is_v1(self) -> bool:
        return all(p.row == V1 for p in self.parts)

    def signature(self) -> tuple[Any, ...]:
        """What a result read from this layer's records depends on (new data: a new signature)."""
        return tuple((p.tag, int(p.series.max_step), float(p.series.max_wall_time)) for p in self.parts)


@functools.lru_cache(maxsize=1024)
def table_layers(content: bytes) -> tuple[metadata.PluginData, ...]:
    """Each row's layer of a layer table, as the per-layer kind's metadata (() when unreadable)."""
    table = parse(content)
    if table is None or table.kind not in metadata.LAYER_KINDS:
        return ()
    kind = metadata.LAYER_KINDS[table.kind]
    return tuple(
        metadata.PluginData(
            version=table.version,
            kind=kind,
            layer=entry.name,
            module_type=entry.module_type,
            shape=list(entry.shape),
            order=entry.order,
            fields=list(table.fields),
            bins=table.bins,
            bounded=entry.bounded,
            massive_ratio=table.massive_ratio,
        )
        for entry in table.layers
    )


def layer_sources(listing: dict[str, Any], kind: int) -> dict[str, LayerSource]:
    """{layer: source} of the per-layer `kind` (e.g. ACTIVATION_STATS) in a run's tensor listing
    ({tag: series}), from v1 tags and v2 layer tables alike; unreadable series are left out."""
    table_kind = metadata.TABLE_KINDS.get(kind)
    found: dict[str, tuple[metadata.PluginData, list[Part]]] = {}
    for tag, series in listing.items():
        data = parse(series.plugin_content)
        if data is None:
            continue
        if data.kind == kind and tag == metadata.tag_for(kind, data.layer):
            _add(found, data, Part(tag, V1, 1, series))
        elif data.kind == table_kind and tag.startswith(metadata.tag_for(table_kind)):
            layers = table_layers(series.plugin_content)
            for row, layer in enumerate(layers):
                _add(found, layer, Part(tag, row, len(layers), series))
    return {name: LayerSource(data, tuple(parts)) for name, (data, parts) in found.items()}


def _add(found: dict[str, tuple[metadata.PluginData, list[Part]]], data: Any, part: Part) -> None:
    """Add a part of `data.layer`; its metadata is that of the part with the latest data."""
    entry = found.get(data.layer)
    if entry is None:
        found[data.layer] = (data, [part])
        return
    known, parts = entry
    newest = max(parts, key=lambda p: int(p.series.max_step))
    parts.append(part)
    if int(part.series.max_step) > int(newest.series.max_step):
        found[data.layer] = (data, parts)


def tags_of(sources: Iterable[LayerSource]) -> list[str]:
    """The distinct tags holding these layers' records, in first-seen order."""
    return list(dict.fromkeys(p.tag for s in sources for p in s.parts))
