// One layer × head cell: the attention of the shown query to every key, drawn on the probe's token
// grid (or as a strip of tokens), each cell scaled to its own maximum. A click picks the query whose
// attention every cell then shows.
import { useEffect, useRef } from "preact/hooks";
import { colormapCss } from "../../lib/colormaps";
import { colormap } from "../../core/state";
import type { CellLayout } from "./math";
import { keyAt, tokenName } from "./math";

export const CELL_PX = 84;

/** The probe sprite (images stacked vertically) and which image to draw under a grid cell. */
export interface ProbeUnderlay {
  sprite: HTMLImageElement;
  width: number;
  height: number;
  sample: number;
}

export interface AttentionCellProps {
  /** Drawn under grid cells (attention then at 60% opacity); null: attention alone. */
  underlay: ProbeUnderlay | null;
  weights: number[];
  layout: CellLayout;
  /** The key of the chosen query (outlined), or null. */
  query: number | null;
  onPick: (key: number) => void;
  testid: string;
  title: string;
}

function draw(canvas: HTMLCanvasElement, props: AttentionCellProps): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { layout, weights } = props;
  const shown = weights.slice(layout.lead);
  const top = Math.max(1e-12, ...shown);
  const w = CELL_PX / layout.cols;
  const h = layout.rows > 1 ? CELL_PX / layout.rows : CELL_PX / 4;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const under = layout.rows > 1 ? props.underlay : null;
  ctx.globalAlpha = 1;
  if (under) {
    ctx.drawImage(under.sprite, 0, under.sample * under.height, under.width, under.height, 0, 0, CELL_PX, CELL_PX);
    ctx.globalAlpha = 0.6;
  }
  for (let r = 0; r < layout.rows; r++) {
    for (let c = 0; c < layout.cols; c++) {
      const value = weights[keyAt(layout, c, r)] ?? 0;
      ctx.fillStyle = colormapCss(colormap.value, Math.min(1, value / top));
      ctx.fillRect(c * w, r * h, Math.ceil(w), Math.ceil(h));
    }
  }
  ctx.globalAlpha = 1;
  if (props.query !== null && props.query >= layout.lead) {
    const i = props.query - layout.lead;
    ctx.strokeStyle = "#ff2d55";
    ctx.lineWidth = 2;
    ctx.strokeRect((i % layout.cols) * w + 1, Math.floor(i / layout.cols) * h + 1, w - 2, h - 2);
  }
}

export function AttentionCell(props: AttentionCellProps) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (ref.current) draw(ref.current, props);
  });
  const { layout } = props;
  const height = layout.rows > 1 ? CELL_PX : CELL_PX / 4;
  const onClick = (e: MouseEvent) => {
    const target = e.currentTarget as HTMLCanvasElement;
    const box = target.getBoundingClientRect();
    const col = Math.min(layout.cols - 1, Math.floor(((e.clientX - box.left) / box.width) * layout.cols));
    const row = Math.min(layout.rows - 1, Math.floor(((e.clientY - box.top) / box.height) * layout.rows));
    props.onPick(keyAt(layout, Math.max(0, col), Math.max(0, row)));
  };
  const lead = layout.lead ? ` · ${tokenName(layout, 0)}: ${(props.weights[0] ?? 0).toFixed(3)}` : "";
  return (
    <canvas
      ref={ref}
      class="ins-attn-cell"
      width={CELL_PX}
      height={height}
      data-testid={props.testid}
      title={props.title + lead}
      onClick={onClick}
    />
  );
}
