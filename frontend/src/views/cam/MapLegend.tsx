// The colour scale of the maps (the colormap, with the part under the threshold dimmed).
import { useLayoutEffect, useRef } from "preact/hooks";
import { colormapRGB } from "../../lib/colormaps";
import { camColormap, camNorm, camThreshold } from "./state";

export function MapLegend() {
  const ref = useRef<HTMLCanvasElement>(null);
  const cmap = camColormap.value;
  const threshold = camThreshold.value;
  useLayoutEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext("2d");
    if (!c || !ctx) return;
    const rgb = colormapRGB(cmap);
    const img = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      const hidden = i < threshold * 255;
      img.data[i * 4] = rgb[i * 3];
      img.data[i * 4 + 1] = rgb[i * 3 + 1];
      img.data[i * 4 + 2] = rgb[i * 3 + 2];
      img.data[i * 4 + 3] = hidden ? 40 : 255;
    }
    ctx.putImageData(img, 0, 0);
  }, [cmap, threshold]);
  const shared = camNorm.value === "shared";
  return (
    <div
      class="ins-legend"
      data-testid="cam-legend"
      title={shared ? "All images of the step on one scale" : "Each map is scaled to its own maximum"}
    >
      <span class="ins-legend-val">low</span>
      <canvas ref={ref} width={256} height={1} />
      <span class="ins-legend-val">high</span>
    </div>
  );
}
