"""The Lightning callback with the real Trainer: steps are the trainer's global steps, whatever
training_step calls; gradients where Lightning has accumulated them; training unchanged; hooks gone after
fit (also a failed one); a resumed fit continues the numbering. Tiny models, CPU, a few steps each."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pytest.importorskip("lightning")  # a test dependency (requirements-dev.txt); the core never needs it

import lightning.pytorch as pl  # noqa: E402
from helpers import assert_training_unchanged, hook_count  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from trainer_helpers import PluginReader  # noqa: E402

import tb_plugin_insight  # noqa: E402
from tb_plugin_insight.integrations.lightning import InsightCallback  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*"),  # lightning's own use of a torch API
    pytest.mark.filterwarnings("ignore:.*resuming from a checkpoint.*"),
    pytest.mark.filterwarnings("ignore:.*callbacks used to create the checkpoint.*"),
]

for _name in ("lightning.pytorch", "lightning.fabric"):  # no banners about GPUs, workers, summaries
    logging.getLogger(_name).setLevel(logging.ERROR)


class Classifier(pl.LightningModule):
    """A tiny CNN in `self.net`; training_step calls `self(x)` or `self.net(x)`."""

    def __init__(self, call_self: bool, fail_at: int = -1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
        )
        self.call_self, self.fail_at = call_self, fail_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        loss = nn.functional.cross_entropy(self(x) if self.call_self else self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(48, 3, 6, 6, generator=gen), torch.randint(0, 3, (48,), generator=gen)
    )
    return torch.utils.data.DataLoader(data, batch_size=4)


def fit(root: Path, callbacks: list, *, max_steps: int, call_self: bool = True, **kwargs: Any) -> Classifier:
    torch.manual_seed(0)
    module = Classifier(call_self, kwargs.pop("fail_at", -1))
    ckpt_path = kwargs.pop("ckpt_path", None)
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger(str(root), name="", version=kwargs.pop("version", "run")),
        callbacks=callbacks,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=kwargs.pop("enable_checkpointing", False),
        **kwargs,
    )
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("call_self", [True, False], ids=["self(x)", "self.net(x)"])
def test_steps_are_the_global_steps_whatever_training_step_calls(tmp_path: Path, call_self: bool) -> None:
    probe = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    fit(tmp_path, [InsightCallback(every=1, probe=probe, cam_every=2)], max_steps=5, call_self=call_self)
    reader = PluginReader(tmp_path)
    (cams,) = reader.get("/maps?run=run")["series"]
    assert cams["layer"] == "net.1" and cams["steps"] == [0, 2, 4]  # probe passes at the due steps
    assert reader.insight_runs() == ["run"]  # the logger's run folder, beside its scalars
    assert reader.stat_steps("run") == list(range(5)) == reader.scalar_steps("run", "loss")
    names = [layer["name"] for layer in reader.get("/layers?run=run")["layers"]]
    assert names == ["net.0", "net.1", "net.3"]  # as pl_module.named_modules() names them
    assert reader.get("/gradients?run=run&layer=net.0")["steps"] == list(range(5))
    # and through the public reader, as a notebook would
    data = tb_plugin_insight.read(str(tmp_path))
    assert data.runs == ["run"]
    stats = data.stats("run")
    assert sorted(set(stats["step"])) == list(range(5))
    assert {"net.0", "net.1", "net.3"} <= set(stats["layer"])
    assert list(data.cams("run").steps) == [0, 2, 4]


class GradNorms(pl.Callback):
    """The first conv's gradient norm (weight and bias) as the optimizer will see it, by global step."""

    def __init__(self) -> None:
        self.norms: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: Any, optimizer: Any) -> None:
        conv = pl_module.net[0]
        self.norms[trainer.global_step] = float(
            torch.cat([conv.weight.grad.flatten(), conv.bias.grad]).norm()
        )


def test_accumulation_and_bf16_read_the_accumulated_gradients_and_leave_training_unchanged(
    tmp_path: Path,
) -> None:
    options = {"max_steps": 3, "accumulate_grad_batches": 2, "precision": "bf16-mixed"}
    norms = GradNorms()

    def final_state(watched: bool) -> dict[str, torch.Tensor]:
        probe = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
        insight = InsightCallback(every=1, histograms=False, probe=probe, cam_every=1)
        callbacks = [insight, norms] if watched else []
        module = fit(tmp_path / str(watched), callbacks, call_self=False, **options)
        return {k: v.clone() for k, v in module.state_dict().items()}

    assert_training_unchanged(final_state)
    reader = PluginReader(tmp_path / "True")
    assert reader.stat_steps("run") == [0, 1, 2] == sorted(norms.norms)  # one record per optimizer step
    grads = reader.get("/gradients?run=run&layer=net.0&fields=gradNorm,weightNorm,updateRatio")
    assert grads["steps"] == [0, 1, 2]
    recorded = grads["values"]["gradNorm"][0]
    assert recorded == pytest.approx([norms.norms[s] for s in range(3)], rel=1e-5)
    assert all(r is not None and r > 0 for r in grads["values"]["updateRatio"][0])


def test_fp16_amp_gradients_are_recorded_unscaled(tmp_path: Path) -> None:
    """16-bit AMP with a GradScaler (on the CPU, given as Lightning's plugin): the parameter gradients are
    read after Lightning unscaled them, the output gradients divided by the scaler's scale."""
    from lightning.pytorch.plugins import MixedPrecision

    norms = GradNorms()
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    fit(tmp_path / "fp16", [InsightCallback(every=1), norms], max_steps=3, call_self=False, plugins=[plugin])
    fit(tmp_path / "fp32", [InsightCallback(every=1)], max_steps=3, call_self=False)
    url = "/gradients?run=run&layer=net.0&fields=gradNorm,actGradNorm"
    fp16, fp32 = (PluginReader(tmp_path / name).get(url)["values"] for name in ("fp16", "fp32"))
    assert fp16["gradNorm"][0] == pytest.approx([norms.norms[s] for s in range(3)], rel=1e-5)
    assert fp16["actGradNorm"][0] == pytest.approx(fp32["actGradNorm"][0], rel=1e-2)  # not 1024x


class KeepModule(pl.Callback):
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.module, self.hooks = pl_module, hook_count(pl_module)


def test_hooks_are_removed_after_fit_and_when_fit_fails(tmp_path: Path) -> None:
    callback = InsightCallback(every=1)
    module = fit(tmp_path / "ok", [callback], max_steps=2)
    assert hook_count(module) == 0 and callback.watch is None
    kept = KeepModule()
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path / "failed", [callback, kept], max_steps=5, fail_at=2)
    assert kept.hooks > 0 and hook_count(kept.module) == 0 and callback.watch is None
    assert PluginReader(tmp_path / "failed").stat_steps("run") == [0, 1]


def test_resumed_fit_continues_the_step_numbering(tmp_path: Path) -> None:
    fit(tmp_path, [InsightCallback(every=1)], max_steps=3, enable_checkpointing=True, version="first")
    checkpoint = next((tmp_path / "first" / "checkpoints").glob("*.ckpt"))
    fit(tmp_path, [InsightCallback(every=1)], max_steps=5, version="second", ckpt_path=str(checkpoint))
    reader = PluginReader(tmp_path)
    assert reader.stat_steps("first") == [0, 1, 2]
    assert reader.stat_steps("second") == [3, 4] == reader.scalar_steps("second", "loss")


def test_options_are_checked_when_the_callback_is_made(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sets 'step' itself"):
        InsightCallback(step=lambda: 0)
    with pytest.raises(TypeError, match="did you mean"):
        InsightCallback(histogram_bnis=8)
    folder = tmp_path / "mine"
    fit(tmp_path, [InsightCallback(every=2, log_dir=str(folder))], max_steps=3)
    assert PluginReader(folder).stat_steps(".") == [0, 2]
