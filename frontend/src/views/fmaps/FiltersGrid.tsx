// A convolution's filters at one step, drawn into one canvas: RGB kernels in a square-ish grid, or
// filters (rows) × input channels (columns) in grayscale through the colormap.
import { useLayoutEffect, useRef } from "preact/hooks";
import { colormapLUT } from "../../lib/colormaps";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { FilterLayer } from "./api";
import { byteTable, sharedRange, tileLut } from "./math";
import { fmColormap, fmScale, loadTiles, type StepTiles } from "./state";
import { useLoaded } from "./use_loaded";

export function FiltersGrid(props: { run: string; info: FilterLayer; step: number }) {
  const { run, info, step } = props;
  const rgb = info.layout === "rgb";
  const tiles = useLoaded<StepTiles>(JSON.stringify([run, info.layer, step, "filters"]), () => loadTiles("filter", run, info.layer, step, rgb));
  const ref = useRef<HTMLCanvasElement>(null);
  const colormap = fmColormap.value;
  const scale = fmScale.value;
  const rows = info.filters.length;
  const cols = rgb ? 1 : Math.max(1, info.inputChannels.length);
  // RGB filters tile into a square-ish grid; grayscale ones are filters (rows) × input channels.
  const across = rgb ? Math.ceil(Math.sqrt(rows)) : cols;
  const down = rgb ? Math.ceil(rows / across) : rows;
  const kh = info.height;
  const kw = info.width;
  const W = across * (kw + 1) - 1;
  const H = down * (kh + 1) - 1;
  const px = Math.max(2, Math.min(12, Math.floor(36 / Math.max(kh, kw))));
  const data = tiles.data;
  useLayoutEffect(() => {
    const canvas = ref.current;
    if (!canvas || !data) return;
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    const image = ctx.createImageData(W, H);
    const out = new Uint32Array(image.data.buffer);
    const s = data.scales;
    const shared = scale === "shared" ? sharedRange(s.scaleMin, s.scaleMax, Array.from({ length: cols }, (_, i) => i)) : null;
    const base = colormapLUT(colormap);
    const lut = new Uint32Array(256);
    for (let f = 0; f < rows; f++) {
      for (let c = 0; c < cols; c++) {
        const x0 = rgb ? (f % across) * (kw + 1) : c * (kw + 1);
        const y0 = rgb ? Math.floor(f / across) * (kh + 1) : f * (kh + 1);
        const lo = s.scaleMin?.[f]?.[c];
        const hi = s.scaleMax?.[f]?.[c];
        if (rgb && data.rgb) {
          const table = byteTable(lo, hi, shared);
          const src = data.rgb.rgba;
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) {
              const i = ((f * kh + y) * data.rgb.width + x) * 4;
              const o = ((y0 + y) * W + x0 + x) * 4;
              image.data[o] = table[src[i]];
              image.data[o + 1] = table[src[i + 1]];
              image.data[o + 2] = table[src[i + 2]];
              image.data[o + 3] = 255;
            }
          }
        } else if (data.gray) {
          tileLut(base, lo, hi, shared, lut);
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) out[(y0 + y) * W + x0 + x] = lut[data.gray.data[(f * kh + y) * data.gray.width + c * kw + x]];
          }
        }
      }
    }
    ctx.putImageData(image, 0, 0);
  }, [data, colormap, scale, W, H]);
  return (
    <div class="ins-fm-filters" data-testid="filters-grid" data-step={data?.scales.step ?? ""} data-layout={info.layout}>
      <div class="ins-fm-sub">
        Filters of <b>{info.layer}</b> ({info.moduleType} {info.shape.join("×")}):{" "}
        {rgb ? `${rows} RGB kernels` : `${rows} filters × ${cols} input channels`}
        {info.numFilters > rows ? ` (first ${rows} of ${info.numFilters})` : ""}
        {data && data.scales.step !== step ? ` · step ${data.scales.step}` : ""}
      </div>
      {tiles.error ? <ErrorMessage title="Could not load the filters" message={tiles.error} /> : null}
      {data ? <canvas ref={ref} class="ins-fm-filter-canvas" role="img" aria-label={`filters of ${info.layer}`} style={{ width: W * px + "px", height: H * px + "px" }} /> : <div class="ins-loading">Loading filters…</div>}
    </div>
  );
}
