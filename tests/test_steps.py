"""Where step numbers come from (watch(step=...): a step source, or manual steps for a wrapper whose
forward is never called), and the one warning when scalars are logged but the watched model never ran."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers import assert_training_unchanged, hook_count, insight_steps, random_batch, sgd_step, state_copy
from torch import nn

from conftest import tiny_cnn
from tb_plugin_insight import InsightWriter


class Wrapper(nn.Module):
    """Like a LightningModule whose training_step calls self.net(x): its own forward never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def stats_steps(run: Path, kind: str = "insight/activation_stats/") -> list[int]:
    """The steps recorded for any layer under the tags of `kind`."""
    return sorted({s for tag, steps in insight_steps(run).items() if tag.startswith(kind) for s in steps})


def test_a_step_source_numbers_each_counted_forward_and_records_a_repeated_step_once(tmp_path: Path) -> None:
    model, gen = tiny_cnn(), torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    global_step = 100
    with InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=2, step=lambda: global_step, grads=False)
        for i in range(8):  # two micro-batches per step: 100, 100, 101, 101, ...
            global_step = 100 + i // 2
            sgd_step(model, opt, *random_batch(gen))
        assert handle.step == 104  # one past the last numbered forward
    assert stats_steps(tmp_path) == [100, 102]
    steps = insight_steps(tmp_path)
    assert all(len(s) == len(set(s)) for s in steps.values())  # each step written once per tag


def test_a_failing_step_source_falls_back_to_counting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, gen = tiny_cnn(), torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1, step=lambda: -1, grads=False)
        for _ in range(3):
            sgd_step(model, opt, *random_batch(gen))
    assert "step source failed" in caplog.text
    assert stats_steps(tmp_path) == [0, 1, 2]


def test_manual_steps_record_a_wrapper_whose_forward_never_runs(tmp_path: Path) -> None:
    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        model, gen = Wrapper(), torch.Generator().manual_seed(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        writer = InsightWriter(str(tmp_path / str(watched))) if watched else None
        handle = writer.watch(model, every=2, step="manual") if writer else None
        for step in range(6):
            if handle:
                handle.begin_step(10 + step)
            x, y = random_batch(gen)
            loss = nn.functional.cross_entropy(model.net(x), y)
            opt.zero_grad()
            loss.backward()
            if handle:
                handle.gradients_ready()
            opt.step()
            if handle:
                handle.end_step()
        if writer:
            writer.close()
            assert hook_count(model) == 0
        return state_copy(model)

    assert_training_unchanged(final_state)
    assert stats_steps(tmp_path / "True") == [10, 12, 14]
    assert stats_steps(tmp_path / "True", "insight/gradient_stats/") == [10, 12, 14]


def test_bad_step_option_is_a_type_error(tmp_path: Path) -> None:
    with InsightWriter(str(tmp_path)) as writer, pytest.raises(TypeError, match="step must be None"):
        writer.watch(tiny_cnn(), step=5)


def log_scalars(writer: InsightWriter, steps: range, run=None) -> None:  # noqa: ANN001
    for step in steps:
        if run is not None:
            run()
        writer.add_scalar("loss", 1.0, step)


def test_scalars_logged_while_the_watched_forward_never_runs_warn_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, gen = Wrapper(), torch.Generator().manual_seed(0)
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=5)
        log_scalars(writer, range(2, 16), lambda: model.net(random_batch(gen)[0]))  # < 2 + 3 * every: quiet
        assert not caplog.records
        log_scalars(writer, range(16, 40), lambda: model.net(random_batch(gen)[0]))
    warnings = [r for r in caplog.records if "Insight has recorded nothing" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "Wrapper has not run once" in message and "self.net(x)" in message and "step='manual'" in message


def test_forwards_in_eval_mode_only_name_eval_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model, gen = tiny_cnn(), torch.Generator().manual_seed(0)
    model.eval()
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path)) as writer:
        writer.watch(model, every=1)
        log_scalars(writer, range(5), lambda: model(random_batch(gen)[0]))
    (warning,) = [r.getMessage() for r in caplog.records if "Insight has recorded nothing" in r.getMessage()]
    assert "ran 4 forward passes" in warning and "model.train()" in warning


def test_a_normal_loop_and_a_late_start_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model, gen = tiny_cnn(), torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with caplog.at_level(logging.WARNING), InsightWriter(str(tmp_path)) as writer:
        handle = writer.watch(model, every=1, step=lambda: global_step)
        for global_step in range(1000, 1002):  # resumed at 1000: lr logged before the first forward
            log_scalars(writer, range(global_step, global_step + 1))
        for global_step in range(1002, 1010):
            log_scalars(
                writer, range(global_step, global_step + 1), lambda: sgd_step(model, opt, *random_batch(gen))
            )
        with pytest.raises(RuntimeError, match="step='manual'"):
            handle.begin_step(5)
    assert not [r for r in caplog.records if "Insight has recorded nothing" in r.getMessage()]


def test_native_add_methods_keep_their_signatures_under_a_watch(tmp_path: Path) -> None:
    """The no-forward check wraps add_scalar & co.: keyword calls and errors stay SummaryWriter's."""
    with InsightWriter(str(tmp_path)) as writer:
        writer.watch(torch.nn.Linear(2, 2))
        writer.add_scalar(tag="a", scalar_value=1.0, global_step=3)
        writer.add_scalar("b", 2.0, 4)
        writer.add_scalars("c", {"x": 1.0}, global_step=5)
        with pytest.raises(TypeError, match="scalar_value"):
            writer.add_scalar("d")  # type: ignore[call-arg]
