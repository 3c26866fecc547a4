"""Event bytes: per training step and record kind at Insight's defaults against the hand-written
every-10th-step practice, and of CAMs per probe image against `add_image` of overlays.

Run: `python -m bench.bench_storage [--steps 100] [--skip-cam]`.

Per kind (issue 7, target 3: at most 1/20 of the practice): one process trains the same ResNet-18
(bench/models.py, 3 classes), batch 16, 112x112, for `--steps` steps twice: watched by Insight at its
defaults with a probe of 16 synthetic-shapes images (`watch(model, probe=probe,
saliency_methods="gradient")`: statistics, histograms, units and gradient flow every 10 steps, feature
maps, CAMs and saliency every 100), and logged by the hand-written practice every 10th step
(bench/practice.py: activation histograms, a make_grid image per conv layer, gradient histograms).
Bytes per kind are the serialized summary values of each tag family; totals are the event files. The
probe images, stored once per run, are shown apart (amortised over the run).

CAMs: both sides write real event files for the same ResNet-18, the same 16 synthetic-shapes probe
images at 224x224 and the same Grad-CAM maps; the usual practice colours the map with jet, blends it
over the image (as pytorch-grad-cam's show_cam_on_image does) and logs one RGB PNG per image per step
with `add_image`.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import torch
from tensorboard.backend.event_processing import event_file_loader
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from bench.event_files import event_bytes
from bench.models import resnet18
from bench.practice import HandWrittenLogger
from demo.shapes import denormalize, make_shapes
from tb_plugin_insight import InsightWriter, cam

ONCE_PER_RUN = ("probe_images", "model_table")  # Insight kinds written once, not per recorded step


def jet(x: torch.Tensor) -> torch.Tensor:
    """OpenCV-style jet colormap of (H, W) values in [0, 1] -> (3, H, W)."""
    four = 4 * x
    return torch.stack([(1.5 - (four - k).abs()).clamp(0, 1) for k in (3, 2, 1)])


def bytes_by_kind(logdir: Path) -> dict[str, int]:
    """Serialized bytes of the summary values per tag family (`insight/<kind>/...` -> kind, `act/...` ->
    act), over every event file under `logdir`."""
    sizes: dict[str, int] = collections.Counter()
    for path in logdir.rglob("events.out.tfevents.*"):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                parts = value.tag.split("/")
                kind = parts[1] if parts[0] == "insight" and len(parts) > 1 else parts[0]
                sizes[kind] += value.ByteSize()
    return dict(sizes)


def _train(model: nn.Module, steps: int, after_backward: object = None) -> None:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        x = torch.randn(16, 3, 112, 112, generator=gen)
        y = torch.randint(0, 3, (16,), generator=gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if callable(after_backward):
            after_backward()
        opt.step()


def defaults_against_practice(
    steps: int,
) -> tuple[dict[str, float], dict[str, float], float, float, float]:
    """Bytes per training step per kind, Insight at its defaults and the hand-written every-10th
    practice; Insight's event bytes per step without and with the once-per-run kinds; the practice's."""
    probe = make_shapes(16, size=112, seed=3).images
    with tempfile.TemporaryDirectory() as tmp:
        ours, usual = Path(tmp) / "insight", Path(tmp) / "usual"
        torch.manual_seed(0)
        model = resnet18(3)
        with InsightWriter(str(ours)) as writer:
            writer.watch(model, probe=probe, saliency_methods="gradient")
            _train(model, steps)
        torch.manual_seed(0)
        model = resnet18(3)
        with SummaryWriter(str(usual)) as writer:
            logger = HandWrittenLogger(writer, model, every=10)
            _train(model, steps, logger.after_backward)
            logger.close()
        ours_kinds, usual_kinds = bytes_by_kind(ours), bytes_by_kind(usual)
        once = sum(ours_kinds.get(k, 0) for k in ONCE_PER_RUN)
        ours_all = event_bytes(ours) / steps
        usual_total = event_bytes(usual) / steps
    per_step = lambda sizes: {k: v / steps for k, v in sizes.items()}  # noqa: E731
    return per_step(ours_kinds), per_step(usual_kinds), ours_all - once / steps, ours_all, usual_total


def print_defaults(steps: int) -> None:
    ours, usual, ours_total, ours_all, usual_total = defaults_against_practice(steps)
    print(f"ResNet-18, batch 16, 112x112, {steps} training steps, probe of 16 images 112x112")
    print(f"{'Insight at its defaults':34s} {'B/step':>8s}   {'hand-written every 10th':28s} {'B/step':>8s}")
    left = sorted(((k, v) for k, v in ours.items() if k not in ONCE_PER_RUN), key=lambda kv: -kv[1])
    right = sorted(usual.items(), key=lambda kv: -kv[1])
    for i in range(max(len(left), len(right))):
        a = f"{left[i][0]:34s} {left[i][1]:8,.0f}" if i < len(left) else " " * 43
        b = f"{right[i][0]:28s} {right[i][1]:8,.0f}" if i < len(right) else ""
        print(f"{a}   {b}")
    print(f"{'total (event files)':34s} {ours_total:8,.0f}   {'total (event files)':28s} {usual_total:8,.0f}")
    once = ", ".join(f"{k} {ours[k] * steps:,.0f} B" for k in ONCE_PER_RUN if k in ours)
    print(f"once per run, not in the rows above: {once}")
    print(f"{'total with them, over these steps':34s} {ours_all:8,.0f}")
    print(
        f"ratio: hand-written every 10th / Insight defaults = {usual_total / ours_total:.1f}x per recorded"
        f" step (target >= 20x); {usual_total / ours_all:.1f}x with the once-per-run records over {steps}"
        " steps"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps of the per-kind comparison")
    parser.add_argument("--cam-steps", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--skip-cam", action="store_true", help="only the per-kind comparison")
    args = parser.parse_args()
    print_defaults(args.steps)
    if args.skip_cam:
        return
    print()
    args.steps = args.cam_steps
    torch.manual_seed(0)
    model = resnet18(3).eval()
    probe = make_shapes(args.images, size=224, seed=3)
    shown = denormalize(probe.images)
    with tempfile.TemporaryDirectory() as tmp:
        ours, usual = Path(tmp) / "insight", Path(tmp) / "usual"
        with InsightWriter(str(ours)) as writer:
            writer.set_probe(probe.images, probe.labels, display=shown)
            handle = writer.watch(model, layers=["fc"], probe=None, cam_every=1, cam_layer="layer4")
            base = event_bytes(ours)
            model.train()
            model(probe.images[:2])  # step 0: one training forward triggers the map pass (+ images)
            writer.flush()
            after_first = event_bytes(ours)
            for _ in range(args.steps - 1):
                model(probe.images[:2])
            writer.flush()
            per_step_maps = (event_bytes(ours) - after_first) / (args.steps - 1)
            images_once = after_first - base - per_step_maps
            handle.remove()
        with SummaryWriter(str(usual)) as writer:
            for step in range(args.steps):
                maps = cam.compute_cam(model, probe.images, "layer4", method="gradcam")
                for i, (image, heat) in enumerate(zip(shown, maps)):
                    overlay = 0.5 * image + 0.5 * jet(heat)
                    writer.add_image(f"cam/{i}", overlay / overlay.max(), step)
            writer.flush()
            usual_total = event_bytes(usual)
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2")
    per_ours = per_step_maps / args.images
    per_usual = usual_total / (args.steps * args.images)
    amortised = per_ours + images_once / args.images / 100
    print(f"ResNet-18 Grad-CAM of layer4 (7x7), {args.images} probe images at 224x224, {args.steps} steps")
    print(f"{'practice':60s} {'bytes/image/step':>17s}")
    print(f"{'add_image of a jet overlay PNG (224x224 RGB)':60s} {per_usual:17,.0f}")
    print(f"{'Insight: 8-bit map at layer resolution (+ prediction)':60s} {per_ours:17,.0f}")
    print(f"{'Insight incl. probe images stored once, over 100 map steps':60s} {amortised:17,.0f}")
    print(f"probe images, stored once per run: {images_once / args.images:,.0f} bytes per image")
    print(
        f"ratio: {per_usual / per_ours:,.0f}x smaller per step; {per_usual / amortised:,.0f}x over 100 steps"
    )


if __name__ == "__main__":
    main()
