// Layer × step heatmap: one ImageData bitmap (one pixel per cell, coloured through a 256-entry
// LUT) scaled onto a canvas with smoothing off. Missing cells are transparent in the bitmap and
// show a hatch pattern painted underneath. Layer names are DOM text down the left.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { colormapLUT, colormapRGB, type ColormapName } from "../lib/colormaps";
import { formatValue } from "../lib/format";
import { cellAt, colorize, normalize, tickColumns, type Normalization, type Normalized } from "../lib/heatmap_math";
import type { RowMeta } from "../lib/layer_groups";

/** A layer × step matrix: values[i][j] is layer layers[i] at step steps[j] (null: none, or not finite). */
export interface HeatmapData {
  run: string;
  stat: string;
  layers: string[];
  steps: number[];
  values: (number | null)[][];
  /** The first answer on a run not read yet: a sample of its steps. */
  sampled?: boolean;
}

export interface HeatmapProps {
  data: HeatmapData;
  colormap: ColormapName;
  normalization: Normalization;
  selectedLayer: string | null;
  onSelectLayer: (layer: string) => void;
  /** Extra tooltip line per layer (e.g. the module type). */
  describeLayer?: (layer: string) => string | undefined;
  statLabel: string;
  dark: boolean;
  /** Tooltip text of a cell value (default: formatValue), e.g. 10^v for log-coloured data. */
  formatCell?: (value: number) => string;
  /** Called with the clicked cell's column too (clicking a layer name calls only onSelectLayer). */
  onSelectCell?: (layer: string, col: number) => void;
  /** A column to mark (e.g. the step shown elsewhere), or -1. */
  markColumn?: number;
  /** Per row, when rows are grouped by module (lib/layer_groups): a layer, or a folded/unfolded group. */
  rowMeta?: RowMeta[];
  /** Fold (open = false) or unfold a group row. */
  onToggleGroup?: (key: string, open: boolean) => void;
  /** Tooltip line of a group row: how its values combine its layers'. */
  groupNote?: string;
  /** The folded group row holding the selected layer (marked in its place), if any. */
  selectedGroup?: string | null;
}

function rowHeightFor(rows: number): number {
  return Math.max(14, Math.min(22, Math.round(440 / Math.max(1, rows))));
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function hatchPattern(ctx: CanvasRenderingContext2D, dpr: number): CanvasPattern | string {
  const size = Math.max(6, Math.round(6 * dpr));
  const tile = document.createElement("canvas");
  tile.width = tile.height = size;
  const t = tile.getContext("2d");
  const a = cssVar("--ins-null-a", "#e0e0e0");
  const b = cssVar("--ins-null-b", "#f5f5f5");
  if (!t) return b;
  t.fillStyle = b;
  t.fillRect(0, 0, size, size);
  t.strokeStyle = a;
  t.lineWidth = Math.max(1, dpr);
  t.beginPath();
  // Diagonal stripes that tile seamlessly.
  t.moveTo(-1, size + 1);
  t.lineTo(size + 1, -1);
  t.moveTo(-1, 1);
  t.lineTo(1, -1);
  t.moveTo(size - 1, size + 1);
  t.lineTo(size + 1, size - 1);
  t.stroke();
  return ctx.createPattern(tile, "repeat") ?? b;
}

let drawCount = 0;

function drawHeatmap(
  canvas: HTMLCanvasElement,
  n: Normalized,
  colormap: ColormapName,
  cssWidth: number,
  cssHeight: number,
): void {
  const start = performance.now();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(cssWidth * dpr));
  const h = Math.max(1, Math.round(cssHeight * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  canvas.style.width = cssWidth + "px";
  canvas.style.height = cssHeight + "px";
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = hatchPattern(ctx, dpr);
  ctx.fillRect(0, 0, w, h);
  if (n.rows > 0 && n.cols > 0) {
    const bitmap = document.createElement("canvas");
    bitmap.width = n.cols;
    bitmap.height = n.rows;
    const bctx = bitmap.getContext("2d");
    if (bctx) {
      const image = bctx.createImageData(n.cols, n.rows);
      colorize(n, colormapLUT(colormap), new Uint32Array(image.data.buffer));
      bctx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(bitmap, 0, 0, n.cols, n.rows, 0, 0, w, h);
    }
  }
  const end = performance.now();
  try {
    performance.measure("insight-heatmap-draw", { start, end, detail: { rows: n.rows, cols: n.cols } });
  } catch {
    // Older browsers without the options form of measure().
  }
  canvas.dataset.drawMs = (end - start).toFixed(2);
  canvas.dataset.draws = String(++drawCount);
}

export function ColorLegend(props: {
  colormap: ColormapName;
  low: string;
  high: string;
  title?: string;
}) {
  const ref = useRef<HTMLCanvasElement>(null);
  useLayoutEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext("2d");
    if (!c || !ctx) return;
    const rgb = colormapRGB(props.colormap);
    const img = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      img.data[i * 4] = rgb[i * 3];
      img.data[i * 4 + 1] = rgb[i * 3 + 1];
      img.data[i * 4 + 2] = rgb[i * 3 + 2];
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }, [props.colormap]);
  return (
    <div class="ins-legend" data-testid="heatmap-legend" title={props.title}>
      <span class="ins-legend-val">{props.low}</span>
      <canvas ref={ref} width={256} height={1} />
      <span class="ins-legend-val">{props.high}</span>
      <span class="ins-null-swatch ins-hatch" />
      <span>no data</span>
    </div>
  );
}

interface Hover {
  row: number;
  col: number;
  x: number;
  y: number;
}

export function Heatmap(props: HeatmapProps) {
  const { data, colormap, normalization, selectedLayer, onSelectLayer, dark } = props;
  const rows = data.layers.length;
  const cols = data.steps.length;
  const rowHeight = rowHeightFor(rows);
  const plotHeight = rows * rowHeight;
  const plotRef = useRef<HTMLDivElement>(null);
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const [width, setWidth] = useState(0);
  const [hover, setHover] = useState<Hover | null>(null);

  useLayoutEffect(() => {
    const el = plotRef.current;
    if (!el) return;
    setWidth(Math.floor(el.clientWidth));
    const ro = new ResizeObserver(() => setWidth(Math.floor(el.clientWidth)));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const norm = useMemo(() => normalize(data.values, cols, normalization), [data, cols, normalization]);

  useEffect(() => {
    if (canvasRef.current && width > 0) drawHeatmap(canvasRef.current, norm, colormap, width, plotHeight);
  }, [norm, colormap, width, plotHeight, dark]);

  const layerRow = selectedLayer === null ? -1 : data.layers.indexOf(selectedLayer);
  const selectedRow = layerRow >= 0 || !props.selectedGroup ? layerRow : data.layers.indexOf(props.selectedGroup);
  const ticks = useMemo(() => tickColumns(data.steps, width), [data.steps, width]);

  const onMove = (e: MouseEvent) => {
    const el = plotRef.current;
    if (!el) return;
    const r = el.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const cell = cellAt(x, y, width, rowHeight, rows, cols);
    setHover(cell ? { ...cell, x, y } : null);
  };

  const onClick = (e: MouseEvent) => {
    const el = plotRef.current;
    if (!el) return;
    const r = el.getBoundingClientRect();
    const cell = cellAt(e.clientX - r.left, e.clientY - r.top, width, rowHeight, rows, cols);
    if (!cell) return;
    const meta = props.rowMeta?.[cell.row];
    if (meta && meta.kind === "group") {
      props.onToggleGroup?.(meta.key, !meta.open);
      return;
    }
    if (props.onSelectCell) props.onSelectCell(data.layers[cell.row], cell.col);
    else onSelectLayer(data.layers[cell.row]);
  };

  let tooltip = null;
  if (hover && hover.row < rows && hover.col < cols) {
    const layer = data.layers[hover.row];
    const value = data.values[hover.row]?.[hover.col] ?? null;
    const meta = props.rowMeta?.[hover.row];
    const group = meta && meta.kind === "group" ? meta : null;
    const extra = group
      ? `${group.count} layers${props.groupNote ? ` · ${props.groupNote}` : ""} · click to ${group.open ? "fold" : "unfold"}`
      : props.describeLayer?.(layer);
    const left = hover.x + 14 + 220 > width ? Math.max(0, hover.x - 14 - 220) : hover.x + 14;
    const top = Math.min(hover.y + 12, Math.max(0, plotHeight - 40));
    tooltip = (
      <div class="ins-tooltip" data-testid="heatmap-tooltip" style={{ left: left + "px", top: top + "px" }}>
        <div class="name">{group ? group.label : layer}</div>
        {extra ? <div style={{ opacity: 0.75 }}>{extra}</div> : null}
        <div>
          <span class="k">step</span>
          <span class="v">{data.steps[hover.col]}</span>
        </div>
        <div>
          <span class="k">{props.statLabel}</span>
          <span class="v">{value === null ? "no data" : (props.formatCell ?? formatValue)(value)}</span>
        </div>
      </div>
    );
  }

  return (
    <div class="ins-hm" data-testid="heatmap" data-layers={rows} data-steps={cols} data-run={data.run} data-stat={data.stat} data-sampled={data.sampled ? "1" : "0"}>
      <div class={"ins-hm-labels" + (props.rowMeta ? " tree" : "")} role="list">
        {data.layers.map((name, i) => {
          const meta = props.rowMeta?.[i];
          const style = { height: rowHeight + "px", lineHeight: rowHeight + "px", paddingLeft: meta ? 4 + meta.depth * 10 + "px" : undefined };
          if (meta && meta.kind === "group") {
            const toggle = () => props.onToggleGroup?.(meta.key, !meta.open);
            return (
              <div
                key={"group:" + meta.key}
                role="listitem"
                tabIndex={0}
                data-testid="layer-group"
                data-group={meta.key}
                data-open={meta.open ? "1" : "0"}
                aria-expanded={meta.open}
                class={"ins-hm-label group" + (i === selectedRow ? " selected" : "") + (hover?.row === i ? " hover" : "")}
                style={style}
                title={`${meta.label}: ${meta.count} layers${props.groupNote ? ` (${props.groupNote})` : ""}. Click to ${meta.open ? "fold" : "unfold"}.`}
                onClick={toggle}
                onKeyDown={(e) => {
                  if (e.key === "Enter" || e.key === " ") {
                    e.preventDefault();
                    toggle();
                  }
                }}
              >
                <span class="ins-fold-mark">{meta.open ? "▼" : "▶"}</span>
                {meta.label}
                <span class="ins-hm-count">{meta.count}</span>
              </div>
            );
          }
          return (
            <div
              key={name}
              role="listitem"
              tabIndex={0}
              data-testid="layer-label"
              class={
                "ins-hm-label" + (i === selectedRow ? " selected" : "") + (hover?.row === i ? " hover" : "")
              }
              style={style}
              title={name}
              onClick={() => onSelectLayer(name)}
              onKeyDown={(e) => {
                if (e.key === "Enter" || e.key === " ") {
                  e.preventDefault();
                  onSelectLayer(name);
                }
              }}
            >
              {name}
            </div>
          );
        })}
      </div>
      <div
        class="ins-hm-plot"
        ref={plotRef}
        style={{ height: plotHeight + "px" }}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
        onClick={onClick}
      >
        <canvas ref={canvasRef} aria-label={`${props.statLabel} heatmap, ${rows} layers by ${cols} steps`} />
        {selectedRow >= 0 ? (
          <div class="ins-hm-row-mark sel" style={{ top: selectedRow * rowHeight + "px", height: rowHeight + "px" }} />
        ) : null}
        {props.markColumn !== undefined && props.markColumn >= 0 && props.markColumn < cols && width > 0 ? (
          <div
            class="ins-hm-col-mark"
            data-testid="heatmap-col-mark"
            style={{ left: (props.markColumn * width) / cols + "px", width: Math.max(2, width / cols) + "px" }}
          />
        ) : null}
        {hover ? (
          <div class="ins-hm-row-mark hover" style={{ top: hover.row * rowHeight + "px", height: rowHeight + "px" }} />
        ) : null}
        {tooltip}
      </div>
      <div />
      <div class="ins-hm-axis">
        {width > 0
          ? ticks.map((j) => {
              const x = ((j + 0.5) * width) / cols;
              const edge = x < 28 ? " first" : x > width - 28 ? " last" : "";
              return (
                <span key={j} class={"ins-hm-tick" + edge} style={{ left: x + "px" }}>
                  {data.steps[j]}
                </span>
              );
            })
          : null}
      </div>
      <div class="ins-hm-axis-title">step</div>
    </div>
  );
}
