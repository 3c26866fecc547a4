"""Train ShapesCNN on synthetic shapes while InsightWriter records per-layer activation statistics.

Run from the repository root (about a minute on 2 CPU cores, no downloads)::

    python demo/train.py                 # or: python -m demo.train
    tensorboard --logdir runs --host 127.0.0.1

Writes to ``<logdir>/<run-name>``: train/loss and train/accuracy every step, eval/loss and
eval/accuracy after every epoch, the model graph, and (via ``writer.watch``) the activation
statistics of every layer every ``--every`` training steps, shown in the Insight tab.
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
from demo.shapes import ShapesData, make_shapes
from tb_plugin_insight import InsightWriter


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults train to >90% eval accuracy in about a minute."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", default="runs", help="TensorBoard log directory (default: runs)")
    p.add_argument("--run-name", default="shapes_cnn", help="run subdirectory (default: shapes_cnn)")
    p.add_argument("--epochs", type=int, default=4, help="passes over the training set (default: 4)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps in total")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default: 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and shuffling")
    p.add_argument("--every", type=int, default=10, help="record activations every N steps")
    p.add_argument("--train-size", type=int, default=4800, help="training images (default: 4800)")
    p.add_argument("--eval-size", type=int, default=1200, help="held-out images (default: 1200)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--log-every", type=int, default=25, help="print progress every N steps")
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "every", "train_size", "eval_size", "threads", "log_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
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
    for unit in ("B", "KiB", "MiB"):
        if num_bytes < 1024 or unit == "MiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    raise AssertionError("unreachable")


def train(args: argparse.Namespace) -> dict[str, float]:
    """The demo: data, model, InsightWriter, training loop. Returns final metrics and timings."""
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # anything not seeded explicitly below
    train_data = make_shapes(args.train_size, seed=args.seed)
    eval_data = make_shapes(args.eval_size, seed=args.seed + 1_000_003)  # disjoint stream
    model = ShapesCNN(seed=args.seed)
    steps_per_epoch = len(train_data) // args.batch_size
    total_steps = args.epochs * steps_per_epoch
    if args.steps is not None:
        total_steps = min(total_steps, args.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total_steps)

    run_dir = os.path.join(args.logdir, args.run_name)
    if event_files_size(run_dir):
        print(
            f"note: {run_dir} already holds event files; this run is appended to them "
            "(pass another --run-name or delete the directory for a clean run)",
            flush=True,
        )
    writer = InsightWriter(log_dir=run_dir)
    writer.add_text("config", "```\n" + json.dumps(vars(args), indent=2) + "\n```")
    model.eval()  # trace the graph without updating BatchNorm statistics
    writer.add_graph(model, train_data.images[: args.batch_size])
    model.train()
    handle = writer.watch(model, every=args.every)
    print(
        f"watching {len(handle.layers)} layers every {args.every} steps; "
        f"{total_steps} steps of {args.batch_size} images; logging to {run_dir}",
        flush=True,
    )

    shuffle = torch.Generator().manual_seed(args.seed)
    global_step, eval_acc, eval_loss = 0, float("nan"), float("nan")
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if global_step >= total_steps:
            break
        for batch in batches(train_data, args.batch_size, shuffle):
            logits = model(batch.images)  # one training forward per step: Insight step == global_step
            loss = F.cross_entropy(logits, batch.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            acc = (logits.argmax(dim=1) == batch.labels).float().mean().item()
            writer.add_scalar("train/loss", loss.item(), global_step)
            writer.add_scalar("train/accuracy", acc, global_step)
            if global_step % args.log_every == 0 or global_step == total_steps - 1:
                print(
                    f"epoch {epoch}/{args.epochs}  step {global_step:4d}/{total_steps}  "
                    f"loss {loss.item():.3f}  acc {acc:.2f}  {time.perf_counter() - t_start:5.1f}s",
                    flush=True,
                )
            global_step += 1
            if global_step >= total_steps:
                break
        eval_loss, eval_acc = evaluate(model, eval_data)
        writer.add_scalar("eval/loss", eval_loss, global_step - 1)
        writer.add_scalar("eval/accuracy", eval_acc, global_step - 1)
        print(
            f"epoch {epoch} done: eval loss {eval_loss:.3f}  eval acc {eval_acc:.3f}  "
            f"({time.perf_counter() - t_start:.1f}s)",
            flush=True,
        )
    t_end_train = time.perf_counter()
    writer.close()

    elapsed = time.perf_counter() - t_start
    size = event_files_size(run_dir)
    print(
        f"\ndone in {elapsed:.1f}s ({t_end_train - t_train:.1f}s training, {global_step} steps); "
        f"eval accuracy {eval_acc:.3f}"
    )
    print(f"run dir: {run_dir}  (event files: {_format_size(size)})")
    print(f"view it: tensorboard --logdir {args.logdir} --host 127.0.0.1", flush=True)
    return {
        "eval_accuracy": eval_acc,
        "eval_loss": eval_loss,
        "steps": global_step,
        "seconds": elapsed,
        "event_bytes": size,
    }


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
