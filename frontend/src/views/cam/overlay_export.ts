// PNG export of composed overlays: one image (its tiles side by side, headed by method/run and
// captioned with the labels) or the whole grid, rendered offscreen at the probe's resolution
// (at least 224 px per tile) and saved through canvas.toBlob -> <a download>.
import type { OverlayEngine, Settings } from "./overlay_engine";
import { className, predictionAt, type FrameModel } from "./state";
import { methodLabel } from "./labels";

const HEADER = 18;
const CAPTION = 34;
const GAP = 6;
const PAD = 8;
const FONT = "12px Roboto, 'Helvetica Neue', Arial, sans-serif";

export interface TileColumn {
  slot: number;
  method: string;
  title: string;
}

/** The tile columns of one image: each method, with the comparison run's map next to it. */
export function tileColumns(model: FrameModel): TileColumn[] {
  const out: TileColumn[] = [];
  const compare = model.slots.length > 1;
  for (const method of model.methods) {
    for (let s = 0; s < model.slots.length; s++) {
      out.push({ slot: s, method, title: compare ? `${methodLabel(method)} · ${s === 0 ? "A" : "B"}: ${model.slots[s].run}` : methodLabel(method) });
    }
  }
  return out;
}

function exportTileSize(model: FrameModel): { w: number; h: number } {
  const slot = model.slots[0];
  const scale = Math.max(1, Math.ceil(224 / Math.max(1, slot.width)));
  return { w: slot.width * scale, h: slot.height * scale };
}

function fitText(ctx: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D, text: string, width: number): string {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(t + "…").width > width) t = t.slice(0, -1);
  return t + "…";
}

function cellSize(model: FrameModel, tile: { w: number; h: number }): { w: number; h: number } {
  const cols = tileColumns(model).length;
  return { w: cols * tile.w + (cols - 1) * GAP, h: HEADER + tile.h + CAPTION };
}

function drawCell(
  ctx: CanvasRenderingContext2D,
  engine: OverlayEngine,
  model: FrameModel,
  settings: Settings,
  image: number,
  x0: number,
  y0: number,
  tile: { w: number; h: number },
  dark: boolean,
): void {
  const columns = tileColumns(model);
  ctx.font = FONT;
  ctx.textBaseline = "top";
  const fg = dark ? "#fff" : "#212121";
  const sub = dark ? "rgba(255,255,255,0.7)" : "#616161";
  columns.forEach((col, c) => {
    const x = x0 + c * (tile.w + GAP);
    const slot = model.slots[col.slot];
    const src = slot.sources.find((s) => s.method === col.method);
    ctx.fillStyle = sub;
    let title = col.title;
    if (!src?.series) title += " (not recorded)";
    else if (src.step === null) title += " (no map yet)";
    else if (src.step !== model.step) title += ` (step ${src.step})`;
    ctx.fillText(fitText(ctx, title, tile.w), x, y0 + 2);
    engine.paint(ctx, slot, src, image, x, y0 + HEADER, tile.w, tile.h, settings);
  });
  const y = y0 + HEADER + tile.h + 4;
  ctx.fillStyle = fg;
  const label = model.labels?.[image];
  const parts: string[] = [`#${image}`];
  if (typeof label === "number") parts.push(`true: ${className(model.classNames, label)}`);
  ctx.fillText(fitText(ctx, parts.join("  "), cellSize(model, tile).w), x0, y);
  let x = x0;
  model.slots.forEach((slot, s) => {
    const p = predictionAt(slot.predictions, slot.sources[0]?.step ?? model.step, image);
    if (!p) return;
    const who = model.slots.length > 1 ? (s === 0 ? " A" : " B") : "";
    const text = `pred${who}: ${className(model.classNames, p.cls)}${p.probability !== null ? ` ${Math.round(p.probability * 100)}%` : ""}`;
    ctx.fillStyle = typeof label === "number" ? (p.cls === label ? "#2e7d32" : "#c62828") : fg;
    ctx.fillText(text, x, y + 15);
    x += ctx.measureText(text).width + 12;
  });
}

function newCanvas(w: number, h: number, dark: boolean): CanvasRenderingContext2D | null {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  if (!ctx) return null;
  ctx.fillStyle = dark ? "#303030" : "#ffffff";
  ctx.fillRect(0, 0, w, h);
  return ctx;
}

/** Compose one image's tiles into a canvas. */
export function composeImage(engine: OverlayEngine, model: FrameModel, settings: Settings, image: number, dark: boolean): HTMLCanvasElement | null {
  const tile = exportTileSize(model);
  const cell = cellSize(model, tile);
  const ctx = newCanvas(cell.w + 2 * PAD, cell.h + 2 * PAD, dark);
  if (!ctx) return null;
  drawCell(ctx, engine, model, settings, image, PAD, PAD, tile, dark);
  return ctx.canvas;
}

/** Compose the whole grid (all images) into a canvas. */
export function composeGrid(engine: OverlayEngine, model: FrameModel, settings: Settings, dark: boolean): HTMLCanvasElement | null {
  const tile = exportTileSize(model);
  const cell = cellSize(model, tile);
  const n = model.numImages;
  const perRow = Math.max(1, Math.min(n, Math.round(Math.sqrt((n * cell.h) / cell.w))));
  const rows = Math.ceil(n / perRow);
  const ctx = newCanvas(perRow * (cell.w + 2 * PAD), rows * (cell.h + 2 * PAD), dark);
  if (!ctx) return null;
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / perRow);
    const c = i % perRow;
    drawCell(ctx, engine, model, settings, i, c * (cell.w + 2 * PAD) + PAD, r * (cell.h + 2 * PAD) + PAD, tile, dark);
  }
  return ctx.canvas;
}

export function safeFileName(s: string): string {
  return s.replace(/[^\w.+-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 120) || "insight";
}

/** Save a canvas as a PNG through a temporary <a download>. */
export function downloadCanvas(canvas: HTMLCanvasElement, filename: string): Promise<void> {
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => {
      if (!blob) {
        reject(new Error("Could not encode the PNG"));
        return;
      }
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = filename;
      a.style.display = "none";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      resolve();
    }, "image/png");
  });
}
