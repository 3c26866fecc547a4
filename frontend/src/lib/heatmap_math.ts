// Pure heatmap maths on typed arrays (no DOM): normalisation, colouring, pointer → cell.
import { packRGBA } from "./colormaps";

export type Normalization = "global" | "row";

export interface Normalized {
  rows: number;
  cols: number;
  /** Row-major LUT index per cell, 0..255. */
  index: Uint8Array;
  /** 1 where the cell has a finite value. */
  valid: Uint8Array;
  /** Global min/max over finite cells (NaN when there are none). */
  min: number;
  max: number;
  /** Per-row min/max (NaN for rows without finite cells). */
  rowMin: Float64Array;
  rowMax: Float64Array;
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

export function normalize(values: (number | null)[][], cols: number, mode: Normalization): Normalized {
  const rows = values.length;
  const index = new Uint8Array(rows * cols);
  const valid = new Uint8Array(rows * cols);
  const rowMin = new Float64Array(rows).fill(NaN);
  const rowMax = new Float64Array(rows).fill(NaN);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < rows; i++) {
    const row = values[i] ?? [];
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < cols; j++) {
      const v = row[j];
      if (isFiniteNumber(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    if (lo <= hi) {
      rowMin[i] = lo;
      rowMax[i] = hi;
      if (lo < min) min = lo;
      if (hi > max) max = hi;
    }
  }
  if (!(min <= max)) {
    min = NaN;
    max = NaN;
  }
  for (let i = 0; i < rows; i++) {
    const row = values[i] ?? [];
    const lo = mode === "row" ? rowMin[i] : min;
    const hi = mode === "row" ? rowMax[i] : max;
    const span = hi - lo;
    for (let j = 0; j < cols; j++) {
      const v = row[j];
      if (!isFiniteNumber(v)) continue;
      const k = i * cols + j;
      valid[k] = 1;
      // A constant row (or a constant heatmap) sits in the middle of the colormap.
      index[k] = span > 0 ? Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255))) : 128;
    }
  }
  return { rows, cols, index, valid, min, max, rowMin, rowMax };
}

/** Colour normalised cells into a packed-RGBA buffer (length rows*cols); invalid cells become transparent. */
export function colorize(n: Normalized, lut: Uint32Array, out: Uint32Array): void {
  const transparent = packRGBA(0, 0, 0, 0);
  const { index, valid } = n;
  for (let k = 0; k < index.length; k++) out[k] = valid[k] ? lut[index[k]] : transparent;
}

/** Map a pointer offset inside the plot to a cell, or null outside. */
export function cellAt(
  x: number,
  y: number,
  width: number,
  rowHeight: number,
  rows: number,
  cols: number,
): { row: number; col: number } | null {
  if (x < 0 || y < 0 || width <= 0 || cols <= 0) return null;
  const col = Math.floor((x * cols) / width);
  const row = Math.floor(y / rowHeight);
  if (col >= cols || row >= rows) return null;
  return { row, col };
}

function niceIncrement(minimum: number): number {
  if (!(minimum > 0)) return 1;
  const pow = Math.pow(10, Math.floor(Math.log10(minimum)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    const incr = m * pow;
    if (incr >= minimum && Number.isInteger(incr)) return incr;
  }
  return 10 * pow;
}

/**
 * Column indices to label on the step axis: steps that are multiples of a "nice" increment
 * (1, 2, 5 × 10^k), at least minSpacing px apart. Works with irregular step lists too: each
 * multiple is labelled at the first column whose step reaches it.
 */
export function tickColumns(steps: readonly number[], width: number, minSpacing = 64): number[] {
  const cols = steps.length;
  if (cols === 0 || width <= 0) return [];
  if (cols === 1) return [0];
  const colWidth = width / cols;
  const span = steps[cols - 1] - steps[0];
  const perCol = span > 0 ? span / (cols - 1) : 1;
  const incr = niceIncrement(Math.max(1, (minSpacing / colWidth) * perCol));
  const out: number[] = [];
  let next = Math.ceil(steps[0] / incr) * incr;
  let lastX = -Infinity;
  for (let j = 0; j < cols; j++) {
    if (steps[j] < next) continue;
    const x = (j + 0.5) * colWidth;
    if (x - lastX >= minSpacing * 0.75) {
      out.push(j);
      lastX = x;
    }
    next = (Math.floor(steps[j] / incr) + 1) * incr;
  }
  return out;
}
