// Pure helpers of the feature-map view: which display cells a layout makes, painting a cell from a
// decoded grid of 8-bit tiles through per-tile colour tables, the shared scale, the channel picker.
// Grid layout (summary.py): tile (row, column) at rows row*h…, columns column*w… of the PNG.

import type { MapLayout } from "./api";

export type Scale = "map" | "shared";
export type TokenView = "tokens" | "grid";

/** How one display cell is drawn from the stored tiles of one probe image (row). */
export type Cell =
  /** One stored tile as it is (h × w): spatial maps, volume slices, vector strips. */
  | { kind: "tile"; column: number; width: number; height: number }
  /** The columns' 1 × L rows stacked: channel × position (sequence layers). */
  | { kind: "rows"; columns: number[]; width: number; height: number }
  /** The columns' 1 × L rows side by side: token × channel (token layers). */
  | { kind: "tokens"; columns: number[]; width: number; height: number }
  /** A column's tokens `offset … offset + side² - 1` as a side × side grid. */
  | { kind: "grid"; column: number; side: number; offset: number; width: number; height: number };

export interface LayoutInfo {
  layout: MapLayout;
  height: number;
  width: number;
  gridSide: number;
  classTokens: number;
}

/** Display cells of one probe image for the shown columns (indices into the stored columns). */
export function cellsFor(info: LayoutInfo, columns: readonly number[], tokenView: TokenView): Cell[] {
  const { layout, height, width } = info;
  if (layout === "sequence") return columns.length ? [{ kind: "rows", columns: [...columns], width, height: columns.length }] : [];
  if (layout === "tokens") {
    if (tokenView === "grid" && info.gridSide > 0) {
      const side = info.gridSide;
      return columns.map((column) => ({ kind: "grid", column, side, offset: info.classTokens, width: side, height: side }));
    }
    return columns.length ? [{ kind: "tokens", columns: [...columns], width: columns.length, height: width }] : [];
  }
  if (layout === "vector") return [{ kind: "tile", column: 0, width, height }];
  return columns.map((column) => ({ kind: "tile", column, width, height }));
}

/**
 * Paint `cell` of probe image `row` into `out` (cell.width × cell.height packed RGBA), reading codes
 * from a grayscale grid `data` `gridWidth` pixels wide with tiles `h` × `w`; `lutOf(column)` gives the
 * 256-entry packed colour table of tile (row, column).
 */
export function paintCell(
  cell: Cell,
  row: number,
  data: Uint8Array,
  gridWidth: number,
  h: number,
  w: number,
  lutOf: (column: number) => Uint32Array,
  out: Uint32Array,
): void {
  const tileStart = (column: number) => row * h * gridWidth + column * w;
  if (cell.kind === "tile") {
    const lut = lutOf(cell.column);
    const start = tileStart(cell.column);
    for (let y = 0; y < h; y++) {
      const src = start + y * gridWidth;
      const dst = y * w;
      for (let x = 0; x < w; x++) out[dst + x] = lut[data[src + x]];
    }
  } else if (cell.kind === "rows") {
    cell.columns.forEach((column, r) => {
      const lut = lutOf(column);
      const src = tileStart(column);
      for (let x = 0; x < w; x++) out[r * w + x] = lut[data[src + x]];
    });
  } else if (cell.kind === "tokens") {
    const n = cell.columns.length;
    cell.columns.forEach((column, c) => {
      const lut = lutOf(column);
      const src = tileStart(column);
      for (let t = 0; t < w; t++) out[t * n + c] = lut[data[src + t]];
    });
  } else {
    const lut = lutOf(cell.column);
    const src = tileStart(cell.column) + cell.offset;
    const count = cell.side * cell.side;
    for (let i = 0; i < count; i++) out[i] = lut[data[src + i]];
  }
}

/** Smallest min and largest max over the given tiles (finite ones); null when there is none. */
export function sharedRange(
  scaleMin: readonly (readonly (number | null)[])[] | null,
  scaleMax: readonly (readonly (number | null)[])[] | null,
  columns: readonly number[],
): [number, number] | null {
  if (!scaleMin || !scaleMax) return null;
  let lo = Infinity;
  let hi = -Infinity;
  for (let r = 0; r < scaleMin.length; r++) {
    for (const c of columns) {
      const a = scaleMin[r]?.[c];
      const b = scaleMax[r]?.[c];
      if (typeof a === "number" && Number.isFinite(a)) lo = Math.min(lo, a);
      if (typeof b === "number" && Number.isFinite(b)) hi = Math.max(hi, b);
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * Colour table of one tile: code q stands for lo + q / 255 * (hi - lo); with a shared range [LO, HI]
 * it is placed on that range, otherwise (per-map scale, or an unknown scale) q indexes `base` as is.
 */
export function tileLut(
  base: Uint32Array,
  lo: number | null | undefined,
  hi: number | null | undefined,
  shared: [number, number] | null,
  out: Uint32Array = new Uint32Array(256),
): Uint32Array {
  if (!shared || typeof lo !== "number" || typeof hi !== "number") {
    out.set(base);
    return out;
  }
  const [LO, HI] = shared;
  const span = HI - LO;
  for (let q = 0; q < 256; q++) {
    const v = lo + (q / 255) * (hi - lo);
    const t = span > 0 ? (v - LO) / span : 0;
    out[q] = base[Math.max(0, Math.min(255, Math.round(t * 255)))];
  }
  return out;
}

/** Byte table of an RGB filter tile on a shared range (identity without one), as tileLut for bytes. */
export function byteTable(lo: number | null | undefined, hi: number | null | undefined, shared: [number, number] | null): Uint8Array {
  const out = new Uint8Array(256);
  for (let q = 0; q < 256; q++) {
    if (!shared || typeof lo !== "number" || typeof hi !== "number") {
      out[q] = q;
      continue;
    }
    const span = shared[1] - shared[0];
    const v = lo + (q / 255) * (hi - lo);
    out[q] = Math.max(0, Math.min(255, Math.round(span > 0 ? ((v - shared[0]) / span) * 255 : 0)));
  }
  return out;
}

/**
 * The channel picker: "3, 7, 12-14" → the stored columns showing those channels, in the order given
 * (a range: the recorded channels inside it). Empty text: every stored column. A single channel that
 * was not recorded is an error naming the recorded ones.
 */
export function parseChannels(text: string, channels: readonly number[]): { columns: number[]; error: string | null } {
  const all = channels.map((_, i) => i);
  const trimmed = text.trim();
  if (!trimmed) return { columns: all, error: null };
  const wanted: number[] = [];
  for (const part of trimmed.split(/[\s,]+/).filter(Boolean)) {
    const range = /^(\d+)\s*-\s*(\d+)$/.exec(part);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      if (b < a) return { columns: all, error: `bad range "${part}": write low-high, e.g. 3-7` };
      // A range picks the recorded channels inside it.
      for (const c of channels) if (c >= a && c <= b && !wanted.includes(c)) wanted.push(c);
    } else if (/^\d+$/.test(part)) wanted.push(Number(part));
    else return { columns: all, error: `"${part}" is not a channel index: write indices like 3, 7, 12-14` };
  }
  const columns: number[] = [];
  const missing: number[] = [];
  for (const c of wanted) {
    const i = channels.indexOf(c);
    if (i < 0) missing.push(c);
    else if (!columns.includes(i)) columns.push(i);
  }
  if (missing.length) {
    const shown = channels.slice(0, 24).join(", ") + (channels.length > 24 ? ", …" : "");
    return {
      columns: all,
      error: `channel${missing.length > 1 ? "s" : ""} ${missing.slice(0, 5).join(", ")} ${missing.length > 1 ? "were" : "was"} not recorded; recorded: ${shown} (record others with maps_channels=)`,
    };
  }
  return { columns, error: null };
}

/** The shown step for a requested one: the last recorded step at or before it, else the first. */
export function stepFor(steps: readonly number[], wanted: number | null): number | null {
  if (!steps.length) return null;
  if (wanted === null) return steps[steps.length - 1];
  let best: number | null = null;
  for (const s of steps) if (s <= wanted && (best === null || s > best)) best = s;
  return best ?? steps[0];
}

/** How a layer's tiles were stored (the /feature_map_layers fields; absent in older runs). */
export interface StorageInfo extends LayoutInfo {
  poolFactor?: number;
  sourceHeight?: number;
  sourceWidth?: number;
  bits?: number;
}

/** L of `maps_bits` (capture/quantize.py): the largest divisor of 255 not above 2^bits − 1. */
export function levelsOf(bits: number): number {
  return [255, 85, 51, 17, 15, 5, 3, 1].find((d) => d <= 2 ** bits - 1) ?? 1;
}

/**
 * Short text for the panel header on how the tiles were stored, e.g. "pooled 2× from 56×56 · 6-bit",
 * and a longer tooltip; empty text for maps stored at full resolution with 8 bits.
 */
export function storageNote(info: StorageInfo): { text: string; title: string } {
  const parts: string[] = [];
  const titles: string[] = [];
  const f = info.poolFactor ?? 1;
  if (f > 1) {
    const sh = info.sourceHeight ?? 0;
    const sw = info.sourceWidth ?? 0;
    let from = `${sh}×${sw}`;
    if (info.layout === "tokens" && info.gridSide > 0) {
      const side = Math.round(Math.sqrt(Math.max(0, sw - info.classTokens)));
      from = `a ${side}×${side} token grid`;
    } else if (sh === 1) from = `length ${sw}`;
    parts.push(`pooled ${f}× from ${from}`);
    titles.push(`Each stored value is the mean of a block of ${sh === 1 && info.layout !== "tokens" ? f : `${f}×${f}`} values of the layer's output (maps_max_side), so the tiles are ${info.height}×${info.width}.`);
  }
  const bits = info.bits ?? 8;
  if (bits < 8) {
    parts.push(`${bits}-bit`);
    const levels = levelsOf(bits);
    titles.push(`Each map is stored with ${levels + 1} levels between its min and max (maps_bits=${bits}): values within (max − min) / ${2 * levels}.`);
  }
  return { text: parts.join(" · "), title: titles.join(" ") };
}

/**
 * The order of a layer's feature-visualisation tiles (indices into `visChannels`): the channels the
 * feature maps show first, in the maps' column order (`mapChannels`), then the others as recorded.
 */
export function visOrder(visChannels: readonly number[], mapChannels: readonly number[]): number[] {
  const rank = new Map<number, number>();
  mapChannels.forEach((c, i) => {
    if (!rank.has(c)) rank.set(c, i);
  });
  const tiles = visChannels.map((_, j) => j);
  const inMaps = tiles.filter((j) => rank.has(visChannels[j])).sort((a, b) => (rank.get(visChannels[a]) ?? 0) - (rank.get(visChannels[b]) ?? 0));
  return [...inMaps, ...tiles.filter((j) => !rank.has(visChannels[j]))];
}
