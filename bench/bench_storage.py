"""Event bytes of CAMs per probe image per recorded step: Insight against `add_image` of overlays.

Run: `python -m bench.bench_storage`. Both sides write real event files for the same ResNet-18, the
same 16 synthetic-shapes probe images at 224x224 and the same Grad-CAM maps; the usual practice
colours the map with jet, blends it over the image (as pytorch-grad-cam's show_cam_on_image does) and
logs one RGB PNG per image per step with `add_image`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from bench.event_files import event_bytes
from bench.models import resnet18
from demo.shapes import denormalize, make_shapes
from tb_plugin_insight import InsightWriter, cam


def jet(x: torch.Tensor) -> torch.Tensor:
    """OpenCV-style jet colormap of (H, W) values in [0, 1] -> (3, H, W)."""
    four = 4 * x
    return torch.stack([(1.5 - (four - k).abs()).clamp(0, 1) for k in (3, 2, 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args()
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
