"""Train ShapesCNN on synthetic shapes while InsightWriter records per-layer activation statistics.

Run from the repository root (about a minute on 2 CPU cores, no downloads)::

    python demo/train.py                 # or: python -m demo.train
    tensorboard --logdir runs --host 127.0.0.1

Writes to ``<logdir>/<run-name>``: train/loss and train/accuracy every step, eval/loss and
eval/accuracy after every epoch, the model graph, and (via ``writer.watch``) the activation
statistics and gradient flow of every layer every ``--every`` training steps, and CAMs, input
saliency maps and feature maps of a probe batch (with the first convolution's filters), shown in the
Insight tab.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python demo/train.py`: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Idle OpenMP threads sleep instead of spinning: on a busy machine spinning threads that share cores
# slow training down several-fold. Only effective before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F

from demo.models import ShapesCNN
from demo.shapes import ShapesData, denormalize, make_shapes
from tb_plugin_insight import InsightWriter


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults train to >90% eval accuracy in about a minute."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", default="runs", help="TensorBoard log directory (default: runs)")
    p.add_argument("--run-name", default="shapes_cnn", help="run subdirectory (default: shapes_cnn)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set (default: 3)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps in total")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default: 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and shuffling")
    p.add_argument("--every", type=int, default=10, help="record activations every N steps")
    p.add_argument("--cam-every", type=int, default=25, help="record CAMs of the probe every N steps")
    p.add_argument(
        "--cam-methods",
        default="gradcam,gradcam++,layercam,eigencam",
        help="comma-separated CAM methods (default: gradcam,gradcam++,layercam,eigencam)",
    )
    p.add_argument(
        "--saliency-methods",
        default="gradient,smoothgrad",
        help="comma-separated input saliency methods recorded with the CAMs ('' for none)",
    )
    p.add_argument("--maps-every", type=int, default=25, help="record feature maps and filters every N steps")
    p.add_argument(
        "--histogram-every",
        type=int,
        default=10,
        help="record activation histograms every N steps, a multiple of --every (default: 10)",
    )
    p.add_argument("--maps-k", type=int, default=16, help="most active channels shown per layer")
    p.add_argument("--probe-size", type=int, default=16, help="held-out images explained by CAMs")
    p.add_argument("--train-size", type=int, default=4800, help="training images (default: 4800)")
    p.add_argument("--eval-size", type=int, default=1200, help="held-out images (default: 1200)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--log-every", type=int, default=25, help="print progress every N steps")
    args = p.parse_args(argv)
    for name in (
        "epochs",
        "batch_size",
        "every",
        "train_size",
        "eval_size",
        "threads",
        "log_every",
        "histogram_every",
    ):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.histogram_every % args.every:
        p.error("--histogram-every must be a multiple of --every")
    if args.steps is not None and args.steps < 1:
        p.error("--steps must be >= 1")
    if args.batch_size > args.train_size:
        p.error("--batch-size must not exceed --train-size")
    return args


def batches(data: ShapesData, batch_size: int, gen: torch.Generator) -> Iterator[ShapesData]:
    """One shuffled epoch of full batches (the ragged tail is dropped: every step sees N images)."""
    order = torch.randperm(len(data), generator=gen)
    for start in range(0, len(data) - batch_size + 1, batch_size):
        yield data[order[start : start + batch_size]]


@torch.no_grad()
def evaluate(model: ShapesCNN, data: ShapesData, batch_size: int = 256) -> tuple[float, float]:
    """Mean loss and accuracy on ``data``, in eval mode (these forwards are not Insight steps)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data), batch_size):
        logits = model(data.images[start : start + batch_size])
        labels = data.labels[start : start + batch_size]
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum())
    model.train(was_training)
    return loss_sum / len(data), correct / len(data)


def event_files_size(run_dir: str) -> int:
    """Total bytes of the TensorBoard event files under ``run_dir``."""
    return sum(p.stat().st_size for p in Path(run_dir).rglob("events.out.tfevents.*"))


def _format_size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 1024**2 else f"{num_bytes / 1024**2:.1f} MiB"


def _log(message: str) -> None:
    print(message, flush=True)  # flushed so progress shows live through pipes and `tee`


def _open_writer(args: argparse.Namespace, model: ShapesCNN, example: torch.Tensor) -> InsightWriter:
    """InsightWriter for the run, with the config and the model graph; the model is not watched yet."""
    run_dir = os.path.join(args.logdir, args.run_name)
    if event_files_size(run_dir):
        _log(
            f"note: {run_dir} already holds event files; this run is appended to them "
            "(pass another --run-name or delete the directory for a clean run)"
        )
    writer = InsightWriter(log_dir=run_dir)
    writer.add_text("config", "```\n" + json.dumps(vars(args), indent=2) + "\n```")
    model.eval()  # trace the graph without updating the BatchNorm running statistics
    writer.add_graph(model, example)
    model.train()
    return writer


def train(args: argparse.Namespace) -> dict[str, float]:
    """The demo: data, model, InsightWriter, training loop. Returns final metrics and timings."""
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    train_data = make_shapes(args.train_size, seed=args.seed)
    eval_data = make_shapes(args.eval_size, seed=args.seed + 1_000_003)  # a disjoint random stream
    model = ShapesCNN(seed=args.seed)
    total_steps = args.epochs * (len(train_data) // args.batch_size)
    if args.steps is not None:
        total_steps = min(total_steps, args.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps)

    writer = _open_writer(args, model, train_data.images[: args.batch_size])
    probe = eval_data[: args.probe_size]
    writer.set_probe(
        probe.images, probe.labels, class_names=ShapesData.CLASSES, display=denormalize(probe.images)
    )
    handle = writer.watch(  # Insight counts training forwards from 0
        model,
        every=args.every,
        cam_every=args.cam_every,
        cam_methods=args.cam_methods.split(","),
        saliency_methods=[m for m in args.saliency_methods.split(",") if m] or None,
        saliency_options={"smoothgrad": {"samples": 8}} if "smoothgrad" in args.saliency_methods else None,
        maps_every=args.maps_every,
        maps_k=args.maps_k,
        histogram_every=args.histogram_every,
    )
    _log(
        f"CAMs ({', '.join(handle.cam_methods)}) of {len(probe)} probe images explain layer "
        f"{handle.cam_layer} every {args.cam_every} steps"
    )
    _log(f"feature maps ({args.maps_k} channels per layer) and filters every {args.maps_every} steps")
    _log(
        f"watching {len(handle.layers)} layers every {args.every} steps; "
        f"{total_steps} steps of {args.batch_size} images; logging to {writer.log_dir}"
    )
    shuffle = torch.Generator().manual_seed(args.seed)
    step, eval_loss, eval_acc = 0, float("nan"), float("nan")
    for epoch in range(1, args.epochs + 1):
        for batch in batches(train_data, args.batch_size, shuffle):
            logits = model(batch.images)  # the one training forward of this step
            loss = F.cross_entropy(logits, batch.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            acc = (logits.argmax(dim=1) == batch.labels).float().mean().item()
            writer.add_scalar("train/loss", loss.item(), step)
            writer.add_scalar("train/accuracy", acc, step)
            if step % args.log_every == 0 or step == total_steps - 1:
                _log(
                    f"epoch {epoch}/{args.epochs}  step {step:4d}/{total_steps}  loss {loss.item():.3f}  "
                    f"acc {acc:.2f}  {time.perf_counter() - t_start:5.1f}s"
                )
            step += 1
            if step == total_steps:
                break
        eval_loss, eval_acc = evaluate(model, eval_data)
        writer.add_scalar("eval/loss", eval_loss, step - 1)
        writer.add_scalar("eval/accuracy", eval_acc, step - 1)
        elapsed = time.perf_counter() - t_start
        _log(f"epoch {epoch} eval: loss {eval_loss:.3f}  acc {eval_acc:.3f}  {elapsed:5.1f}s")
        if step == total_steps:
            break
    writer.close()
    return _report(args, writer.log_dir, time.perf_counter() - t_start, step, eval_loss, eval_acc)


def _report(
    args: argparse.Namespace, run_dir: str, seconds: float, steps: int, eval_loss: float, eval_acc: float
) -> dict[str, float]:
    """Print where the run is and how to look at it; return the numbers for callers and tests."""
    size = event_files_size(run_dir)
    _log(f"\ndone: {steps} steps in {seconds:.1f}s, eval accuracy {eval_acc:.3f}")
    _log(f"run dir: {run_dir}  (event files: {_format_size(size)})")
    _log(f"view it: tensorboard --logdir {args.logdir} --host 127.0.0.1")
    return {"eval_accuracy": eval_acc, "eval_loss": eval_loss, "steps": steps, "seconds": seconds,
            "event_bytes": size}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
