// A layer's activation histograms over steps: a bins × steps image (value axis up, steps across),
// each step's column scaled to its own fullest bin, coloured through the tab's colormap LUTs.
// Hover shows the bin and its count; a click picks the step shown in detail elsewhere.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { colormapLUT, packRGBA, type ColormapName } from "../../lib/colormaps";
import { formatValue } from "../../lib/format";
import { tickColumns } from "../../lib/heatmap_math";
import type { HistogramsResponse } from "./api";
import { binRange, histogramCells } from "./math";

export interface HistogramHeatmapProps {
  data: HistogramsResponse;
  colormap: ColormapName;
  /** The step index shown in detail (marked), or -1. */
  markColumn: number;
  onSelectColumn: (col: number) => void;
  height?: number;
}

export function HistogramHeatmap(props: HistogramHeatmapProps) {
  const { data, colormap } = props;
  const height = props.height ?? 220;
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(600);
  const [hover, setHover] = useState<{ x: number; y: number; col: number; bin: number } | null>(null);
  const cols = data.steps.length;

  useLayoutEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const measure = () => setWidth(Math.max(120, el.clientWidth));
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    const c = canvas.current;
    if (!c || cols === 0 || data.bins <= 0) return;
    const cells = histogramCells(data);
    const bitmap = document.createElement("canvas");
    bitmap.width = cols;
    bitmap.height = data.bins;
    const bctx = bitmap.getContext("2d");
    const ctx = c.getContext("2d");
    if (!bctx || !ctx) return;
    const image = bctx.createImageData(cols, data.bins);
    const out = new Uint32Array(image.data.buffer);
    const lut = colormapLUT(colormap);
    const none = packRGBA(0, 0, 0, 0);
    for (let k = 0; k < cells.length; k++) out[k] = cells[k] < 0 ? none : lut[cells[k]];
    bctx.putImageData(image, 0, 0);
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = width + "px";
    c.style.height = height + "px";
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.drawImage(bitmap, 0, 0, c.width, c.height);
  }, [data, colormap, width, height, cols]);

  const last = cols - 1;
  const low = cols ? data.low[last] : null;
  const high = cols ? data.high[last] : null;
  const ticks = tickColumns(data.steps, width);
  const onMove = (e: MouseEvent) => {
    const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const col = Math.floor((x / rect.width) * cols);
    const bin = data.bins - 1 - Math.floor((y / rect.height) * data.bins);
    if (col < 0 || col >= cols || bin < 0 || bin >= data.bins) setHover(null);
    else setHover({ x, y, col, bin });
  };
  const hoverRange = hover ? binRange(data, hover.col, hover.bin) : null;
  return (
    <div class="ins-hist" data-testid="histogram-heatmap" data-steps={cols} data-bins={data.bins}>
      <div class="ins-hist-yaxis" style={{ height: height + "px" }}>
        <span>{formatValue(high)}</span>
        {low !== null && high !== null && low < 0 && high > 0 ? <span>0</span> : null}
        <span>{formatValue(low)}</span>
      </div>
      <div ref={wrap} class="ins-hist-plot">
        <div
          class="ins-hm-plot"
          style={{ height: height + "px" }}
          onMouseMove={onMove}
          onMouseLeave={() => setHover(null)}
          onClick={() => {
            if (hover) props.onSelectColumn(hover.col);
          }}
        >
          <canvas ref={canvas} class="ins-hatch" />
          {props.markColumn >= 0 && cols > 0 ? (
            <div
              class="ins-hm-col-mark"
              style={{ left: (props.markColumn / cols) * width + "px", width: Math.max(2, width / cols) + "px" }}
            />
          ) : null}
          {hover && hoverRange ? (
            <div
              class="ins-tooltip"
              data-testid="histogram-tooltip"
              style={{ left: Math.min(hover.x + 12, width - 180) + "px", top: Math.max(0, hover.y - 44) + "px" }}
            >
              <div>step {data.steps[hover.col]}</div>
              <div>
                [{formatValue(hoverRange[0])}, {formatValue(hoverRange[1])}): <b>{data.counts[hover.col]?.[hover.bin] ?? 0}</b>
              </div>
            </div>
          ) : null}
        </div>
        <div class="ins-hm-axis">
          {ticks.map((j) => (
            <span key={j} class="ins-hm-tick" style={{ left: ((j + 0.5) / cols) * width + "px" }}>
              {data.steps[j]}
            </span>
          ))}
        </div>
      </div>
    </div>
  );
}
