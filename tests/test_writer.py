"""InsightWriter.watch: layer choice, step counting, hooks' lifetime, and no effect on training."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from helpers import hook_count, insight_steps, random_batch, read_events, sgd_step
from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
from torch import nn

from conftest import tiny_cnn
from tb_plugin_insight import InsightWriter, crc, metadata


def train(model: nn.Module, steps: int, writer: InsightWriter | None = None, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        model.train()
        x, y = random_batch(gen)
        loss = sgd_step(model, opt, x, y)
        if writer is not None:
            writer.add_scalar("loss", loss.item(), step)
        if step % 4 == 3:  # an eval pass in between must not shift Insight's steps
            model.eval()
            with torch.no_grad():
                model(x)


def test_default_layers_are_parametrised_and_activation_modules(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model)
        assert handle.layers == ["0", "1", "2", "3", "4", "6"]  # Flatten has neither


def test_layers_by_name_and_predicate(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        assert writer.watch(model, layers=["3", "0"]).layers == ["0", "3"]
        conv_only = writer.watch(model, layers=lambda name, mod: isinstance(mod, nn.Conv2d))
        assert conv_only.layers == ["0", "3"]


def test_unknown_layer_name_lists_close_matches(tmp_path: Path) -> None:
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 1, 1))
    model.add_module("conv2", nn.Conv2d(1, 1, 1))
    with InsightWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match=r"no module named 'conv3'.*conv1"):
            writer.watch(model, layers=["conv3"])
        with pytest.raises(TypeError, match="list of names"):
            writer.watch(model, layers="conv1")
        with pytest.raises(ValueError, match="every"):
            writer.watch(model, every=0)
        with pytest.raises(ValueError, match="no layer selected"):
            writer.watch(model, layers=lambda n, m: False)
        with pytest.raises(TypeError, match="nn.Module"):
            writer.watch("model")  # type: ignore[arg-type]


def test_steps_line_up_with_global_step(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=5)
        train(model, 23, writer)
    steps = insight_steps(tmp_path)
    kinds = (
        metadata.RecordKind.ACTIVATION_STATS,
        metadata.RecordKind.GRADIENT_STATS,
        metadata.RecordKind.ACTIVATION_HISTOGRAM,
        metadata.RecordKind.UNIT_STATS,
    )
    table_tag = metadata.tag_for(metadata.RecordKind.MODEL_TABLE)
    assert steps.pop(table_tag) == [0]  # once, from the first recorded forward
    # weight and gradient histograms: one table each (rows are parameter tensors), at the histograms' steps
    param_tables = [tag for tag in steps if tag.startswith("insight/layer_table/")]
    assert sorted(tag.split("/")[2] for tag in param_tables) == ["grad_histogram", "param_histogram"]
    assert all(steps.pop(tag) == [0] for tag in param_tables)
    assert set(steps) == {metadata.tag_for(kind, n) for kind in kinds for n in "012346"}
    for tag, recorded in steps.items():
        if tag.startswith(metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, "")):
            assert recorded == [0]  # histograms every 100 steps by default (100 is a multiple of 5)
        else:
            assert recorded == [0, 5, 10, 15, 20]  # gradients and units at the statistics' steps


def test_histogram_every(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path / "ten")) as writer:
        writer.watch(model, layers=["0"], every=5, histogram_every=10)
        train(model, 23, writer)
    steps = insight_steps(tmp_path / "ten")
    assert steps[metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, "0")] == [0, 10, 20]
    assert steps[metadata.tag_for(metadata.RecordKind.UNIT_STATS, "0")] == [0, 5, 10, 15, 20]
    assert steps[metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "0")] == [0, 5, 10, 15, 20]
    with InsightWriter(str(tmp_path / "default")) as writer:
        handle = writer.watch(model, layers=["0"], every=30)  # the default 100 rounds up to 120
        handle.step = 90
        train(model, 32, writer)
    steps = insight_steps(tmp_path / "default")
    assert steps[metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, "0")] == [120]
    assert steps[metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "0")] == [90, 120]
    with InsightWriter(str(tmp_path / "bad")) as writer:
        with pytest.raises(
            ValueError, match=r"histogram_every=25 must be a multiple of every=10.*use 20 or 30"
        ):
            writer.watch(model, every=10, histogram_every=25)
        with pytest.raises(ValueError, match="histogram_every must be a positive int"):
            writer.watch(model, histogram_every=0)
        with pytest.raises(ValueError, match="histogram_every must be a positive int"):
            writer.watch(model, histogram_every=True)  # type: ignore[arg-type]


def test_step_override(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, layers=["0"], every=10)
        writer.step = 100
        assert handle.step == 100 and writer.step == 100
        for _ in range(11):
            model(torch.randn(2, 3, 8, 8))
        with pytest.raises(ValueError, match="non-negative"):
            writer.step = -1
    steps = insight_steps(tmp_path)
    assert steps.pop(metadata.tag_for(metadata.RecordKind.MODEL_TABLE)) == [100]
    assert steps == {
        metadata.tag_for(metadata.RecordKind.ACTIVATION_STATS, "0"): [100, 110],
        metadata.tag_for(metadata.RecordKind.UNIT_STATS, "0"): [100, 110],
        metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, "0"): [100],  # every 100 steps
    }


def test_metadata_only_on_first_value_of_each_tag(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        train(model, 3)
    with_metadata: dict[str, int] = {}
    for event in read_events(tmp_path):
        for value in event.summary.value:
            if value.tag == metadata.tag_for(metadata.RecordKind.MODEL_TABLE):
                assert value.HasField("metadata") and value.metadata.data_class == 3  # BLOB_SEQUENCE
                continue
            if value.tag.startswith("insight/") and value.HasField("metadata"):
                with_metadata[value.tag] = with_metadata.get(value.tag, 0) + 1
                parsed = metadata.parse_plugin_metadata(value.metadata.plugin_data.content)
                assert value.metadata.data_class == 2  # DATA_CLASS_TENSOR
                assert parsed is not None
                params = parsed.kind in (
                    metadata.RecordKind.PARAM_HISTOGRAM,
                    metadata.RecordKind.GRAD_HISTOGRAM,
                )
                # a layer table: every layer, or every parameter tensor (weight and bias of 4 layers)
                assert len(parsed.layers) == (8 if params else 6)
                assert all(layer.module_type and list(layer.shape) for layer in parsed.layers)
    # activation statistics, gradient statistics, histograms, units, weight and gradient histograms: one
    # table each, metadata once
    assert len(with_metadata) == 6 and set(with_metadata.values()) == {1}


def test_recording_never_changes_training(tmp_path: Path) -> None:
    def final_weights(watch: bool) -> list[torch.Tensor]:
        torch.manual_seed(1234)
        model = nn.Sequential(tiny_cnn(seed=7), nn.Dropout(0.3))  # dropout draws from the global RNG
        writer = InsightWriter(str(tmp_path / ("on" if watch else "off")))
        if watch:
            writer.watch(model, every=1, histograms=True, histogram_every=1, units=True, model_table=True)
        train(model, 12)
        writer.close()
        state = model.state_dict()  # includes BatchNorm running statistics
        return [state[k].clone() for k in sorted(state)]

    without, with_watch = final_weights(False), final_weights(True)
    recorded = insight_steps(tmp_path / "on")
    assert recorded[metadata.tag_for(metadata.RecordKind.ACTIVATION_HISTOGRAM, "0.2")] == list(range(12))
    assert recorded[metadata.tag_for(metadata.RecordKind.UNIT_STATS, "0.2")] == list(range(12))
    assert len(without) == len(with_watch)
    for a, b in zip(without, with_watch):
        assert torch.equal(a, b)


def test_hooks_removed_by_close_unwatch_and_after_exception(tmp_path: Path) -> None:
    model = tiny_cnn()
    baseline = hook_count(model)
    writer = InsightWriter(str(tmp_path))
    handle = writer.watch(model)
    assert hook_count(model) > baseline
    writer.unwatch(model)
    assert hook_count(model) == baseline and not handle.active

    writer.watch(model)
    once = hook_count(model)
    writer.watch(model)  # watching again replaces, never stacks hooks
    assert hook_count(model) == once
    handle = writer.watch(model)
    handle.remove()
    assert hook_count(model) == baseline

    with pytest.raises(RuntimeError, match="boom"):
        with InsightWriter(str(tmp_path)) as writer2:
            writer2.watch(model, every=1)
            model(torch.randn(2, 3, 8, 8))
            raise RuntimeError("boom")
    assert hook_count(model) == baseline

    writer.watch(model)
    writer.close()
    assert hook_count(model) == baseline
    writer.close()  # a second close is harmless


def test_forward_raising_inside_model_keeps_counting_sane(tmp_path: Path) -> None:
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=1)
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 5, 8, 8))  # wrong channel count fails inside the first conv
        model(torch.randn(2, 3, 8, 8))
        assert handle.step == 2
    assert all(steps == [1] for steps in insight_steps(tmp_path).values())


def _records(path: Path) -> list[tuple[bytes, int, int, int]]:
    """Split a TFRecord file into (data, header crc, data crc, header) without trusting any reader."""
    raw = path.read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        header = raw[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", raw[pos + 8 : pos + 12])
        data = raw[pos + 12 : pos + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[pos + 12 + length : pos + 16 + length])
        out.append((data, header_crc, data_crc, int.from_bytes(header, "little")))
        pos += 16 + length
    return out


def test_fast_crc_writes_the_stock_checksums(tmp_path: Path) -> None:
    assert crc.install(), "google-crc32c's C implementation should be installed"
    for size in (0, 1, 7, 1000, 1 << 20):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert crc.fast_masked_crc32c(data) == pywrap_tensorflow.masked_crc32c(data)
    model = tiny_cnn()
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        train(model, 3)
    (path,) = tmp_path.glob("events.out.tfevents.*")
    records = _records(path)
    assert len(records) > 3
    for data, header_crc, data_crc, length in records:
        assert header_crc == pywrap_tensorflow.masked_crc32c(struct.pack("<Q", length))
        assert data_crc == pywrap_tensorflow.masked_crc32c(data)
