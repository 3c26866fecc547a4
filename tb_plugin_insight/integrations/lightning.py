"""PyTorch Lightning: `InsightCallback`, the Insight tab next to the TensorBoard logger's scalars.

    trainer = lightning.Trainer(callbacks=[InsightCallback(every=10, probe=(images, labels))])

Steps are `trainer.global_step` (the step Lightning's logger writes scalars at), marked by the callback's
hooks, so any `training_step` works: `self(x)`, `self.net(x)`, several submodules. Layer names are those
of `pl_module.named_modules()` (`net.0`, ...). Gradients are read in `on_before_optimizer_step`, where
Lightning has accumulated them and, under 16-bit AMP, unscaled them (before any gradient clipping). Only
global rank 0 records and writes. Needs the `lightning` package (`pip install tb-plugin-insight[lightning]`);
`pytorch_lightning` is used when `lightning` is not installed.
"""

from __future__ import annotations

from typing import Any, Optional

from tb_plugin_insight import logdirs
from tb_plugin_insight.integrations import trainer_watch
from tb_plugin_insight.integrations.trainer_watch import TrainerWatch
from tb_plugin_insight.writer import InsightWriter

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
    from lightning.pytorch.loggers import TensorBoardLogger
except ImportError:  # the older package name
    from pytorch_lightning import Callback, LightningModule, Trainer  # type: ignore[assignment]
    from pytorch_lightning.loggers import TensorBoardLogger  # type: ignore[assignment]

__all__ = ["InsightCallback", "run_folder"]


class InsightCallback(Callback):
    """Watch the LightningModule during `fit` and write the Insight tab into the logger's run folder.

    Example:
        >>> trainer = Trainer(max_steps=1000, callbacks=[InsightCallback(every=10, probe=(x, y))])
        >>> trainer.fit(module, loader)      # Insight tab next to the TensorBoardLogger's scalars
    """

    def __init__(self, *, log_dir: Optional[str] = None, **options: Any) -> None:
        """
        Args:
            log_dir: the run folder to write into; default: the run folder of the trainer's
                `TensorBoardLogger` (`logger.log_dir`), else of its first logger with a `log_dir`, else
                `<default_root_dir>/insight`.
            **options: `InsightWriter.watch`'s options (`layers`, `every`, `probe`, `cam=...`, ...),
                except `step`, `mode` and `grad_accumulation`, which the trainer decides.

        Raises:
            TypeError / ValueError: an unknown or bad option (checked here, not at the start of fit).
        """
        super().__init__()
        self.log_dir = log_dir
        self.options = trainer_watch.check_options("InsightCallback", options)
        self.watch: Optional[TrainerWatch] = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Attach (after `configure_model` and the move to the device); rank 0 only."""
        self._close()
        if not trainer.is_global_zero:
            return
        folder = self.log_dir or run_folder(trainer)
        scaler = getattr(trainer.precision_plugin, "scaler", None)  # 16-mixed: torch.amp.GradScaler
        self.watch = TrainerWatch(InsightWriter(folder), pl_module, self.options, scaler=scaler)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.watch is not None:
            self.watch.begin(trainer.global_step)  # micro-batches of one optimizer step: recorded once

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self.watch is not None:
            self.watch.gradients_ready()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.watch is not None:
            self.watch.end()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._close()  # hooks off the model also when fit fails

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._close()

    def _close(self) -> None:
        watch, self.watch = self.watch, None
        trainer_watch.close(watch)


def run_folder(trainer: Trainer) -> str:
    """The run folder of the trainer's TensorBoardLogger, else of its first logger that has one, else
    `<default_root_dir>/insight`."""
    loggers = list(trainer.loggers)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return str(logger.log_dir)
    for logger in loggers:
        folder = getattr(logger, "log_dir", None)
        if folder:
            return str(folder)
    return logdirs.join(str(trainer.default_root_dir), "insight")  # may be a URL (s3://...)
