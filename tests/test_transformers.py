"""The HuggingFace callback with the real Trainer and a tiny BERT built from its config (offline): Insight
records into the run that report_to=["tensorboard"] writes, at the Trainer's logging steps, through one
writer; gradients are read before the optimizer step; training is unchanged; hooks are gone after train."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the model is built from a config
pytest.importorskip("transformers")  # a test dependency (requirements-dev.txt); the core never needs it

import transformers  # noqa: E402
from helpers import assert_training_unchanged, hook_count  # noqa: E402
from trainer_helpers import PluginReader  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments  # noqa: E402

import tb_plugin_insight  # noqa: E402
from tb_plugin_insight.integrations.transformers import InsightCallback  # noqa: E402
from tb_plugin_insight.writer import InsightWriter  # noqa: E402

transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)


class Tokens(torch.utils.data.Dataset):
    """Random token ids with labels: 24 sequences of 8 tokens."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 100, (24, 8), generator=gen)
        self.labels = torch.randint(0, 2, (24,), generator=gen)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": self.labels[i],
        }


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    return BertForSequenceClassification(config)


def train(out: Path, callbacks: list, *, max_steps: int = 4, **kwargs: Any) -> Trainer:
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=["tensorboard"],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **kwargs,
    )
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(), callbacks=callbacks)
    trainer.train()
    return trainer


def test_insight_is_in_the_tensorboard_run_at_the_trainers_steps(tmp_path: Path) -> None:
    callback = InsightCallback(every=1)
    trainer = train(tmp_path, [callback], max_steps=4)
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and len(list(run_dirs[0].glob("events.out.tfevents.*"))) == 1  # one writer
    reader = PluginReader(tmp_path / "runs")
    run = run_dirs[0].name
    assert reader.insight_runs() == [run]
    assert reader.scalar_steps(run, "train/loss") == [1, 2, 3, 4] == reader.stat_steps(run)
    assert trainer.state.global_step == 4
    names = [layer["name"] for layer in reader.get(f"/layers?run={run}")["layers"]]
    assert "bert.encoder.layer.0.attention.self.query" in names and "classifier" in names
    grads = reader.get(f"/gradients?run={run}&layer=classifier&fields=gradNorm,updateRatio")
    assert grads["steps"] == [1, 2, 3, 4]
    assert all(v is not None and v > 0 for v in grads["values"]["updateRatio"][0])
    gradients = tb_plugin_insight.read(str(tmp_path / "runs")).gradients(run)  # the public reader too
    assert sorted(set(gradients["step"])) == [1, 2, 3, 4]
    assert (gradients["updateRatio"][gradients["layer"] == "classifier"] > 0).all()
    assert hook_count(trainer.model) == 0 and callback.watch is None


def test_training_is_unchanged_with_accumulation(tmp_path: Path) -> None:
    norms: dict[int, float] = {}

    class ClassifierGradNorm(transformers.TrainerCallback):
        def on_pre_optimizer_step(
            self, args: Any, state: Any, control: Any, model: Any, **kwargs: Any
        ) -> None:
            layer = model.classifier
            grad = torch.cat([layer.weight.grad.flatten(), layer.bias.grad])
            norms[state.global_step + 1] = float(grad.norm())

    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        callbacks = [InsightCallback(every=2), ClassifierGradNorm()] if watched else []
        trainer = train(tmp_path / str(watched), callbacks, max_steps=4, gradient_accumulation_steps=2)
        return {k: v.clone() for k, v in trainer.model.state_dict().items()}

    assert_training_unchanged(final_state)
    reader = PluginReader(tmp_path / "True" / "runs")
    (run,) = reader.insight_runs()
    assert reader.stat_steps(run) == [2, 4]  # global steps 1..4, every 2nd
    grads = reader.get(f"/gradients?run={run}&layer=classifier&fields=gradNorm")
    assert grads["steps"] == [2, 4]
    assert grads["values"]["gradNorm"][0] == pytest.approx([norms[2], norms[4]], rel=1e-5)


def test_added_after_init_writes_its_own_file_in_the_same_run(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, logging_steps=1,
        report_to=["tensorboard"], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens())
    trainer.add_callback(InsightCallback(every=1))
    trainer.train()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2
    reader = PluginReader(tmp_path / "tb")
    assert reader.stat_steps(".") == [1, 2] == reader.scalar_steps(".", "train/loss")


def test_a_writer_given_to_the_tensorboard_callback_is_used(tmp_path: Path) -> None:
    writer = InsightWriter(str(tmp_path / "mine"))
    tensorboard = transformers.integrations.TensorBoardCallback(tb_writer=writer)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, logging_steps=1,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    callbacks = [tensorboard, InsightCallback(every=1)]
    Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(), callbacks=callbacks).train()
    assert len(list((tmp_path / "mine").glob("events.out.tfevents.*"))) == 1
    assert not (tmp_path / "runs").exists()
    reader = PluginReader(tmp_path / "mine")
    assert reader.stat_steps(".") == [1, 2] == reader.scalar_steps(".", "train/loss")


def test_close_after_a_failed_training_removes_the_hooks(tmp_path: Path) -> None:
    class Fail(transformers.TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any, **kwargs: Any) -> None:
            self.model, self.hooks = model, hook_count(model)
            raise RuntimeError("boom")

    callback, fail = InsightCallback(every=1), Fail()
    with pytest.raises(RuntimeError, match="boom"):
        train(tmp_path, [callback, fail], max_steps=3)
    assert fail.hooks > 0 and callback.watch is not None  # the Trainer said nothing
    callback.close()
    assert callback.watch is None and hook_count(fail.model) == 0


def test_options_are_checked_when_the_callback_is_made() -> None:
    with pytest.raises(TypeError, match="sets 'mode' itself"):
        InsightCallback(mode="all")
    with pytest.raises(ValueError, match="every"):
        InsightCallback(every=0, layers=["classifier"])
