// Pure maths of the overlay viewer (no DOM): per-image vs shared normalisation, the per-frame
// colouring loop, resampling and the prefetch order. Sprite slicing is in lib/sprite_math.ts, steps in
// lib/steps.ts, the LRU in lib/lru.ts.
import { packRGBA } from "../../lib/colormaps";

// ---------------------------------------------------------------------------------------------
// Normalisation. Stored maps are 0..255, normalised per image. "image" shows them as stored;
// "shared" puts every image of the step on one scale: with the raw per-image ranges (when the
// backend provides them) the stored values are mapped back to raw values and rescaled by the
// range over all images; without them, by the maximum stored value over all images of the step.

export type MapNormalization = "image" | "shared";

/** Display value = a * stored + b (then clamped to 0..255). Written into `out` as [a, b]. */
export function normalizationAffine(
  mode: MapNormalization,
  image: number,
  count: number,
  maxima: ArrayLike<number>,
  rawMin: ArrayLike<number | null> | null | undefined,
  rawMax: ArrayLike<number | null> | null | undefined,
  out: Float64Array,
): Float64Array {
  out[0] = 1;
  out[1] = 0;
  if (mode !== "shared" || count <= 0) return out;
  if (rawMin && rawMax && rawMin.length >= count && rawMax.length >= count) {
    let lo = Infinity;
    let hi = -Infinity;
    let ok = true;
    for (let i = 0; i < count; i++) {
      const a = rawMin[i];
      const b = rawMax[i];
      if (typeof a !== "number" || typeof b !== "number" || !Number.isFinite(a) || !Number.isFinite(b)) {
        ok = false;
        break;
      }
      if (a < lo) lo = a;
      if (b > hi) hi = b;
    }
    if (ok) {
      const span = hi - lo;
      if (span > 0) {
        const mn = rawMin[image] as number;
        const mx = rawMax[image] as number;
        out[0] = (mx - mn) / span;
        out[1] = ((mn - lo) / span) * 255;
      }
      return out;
    }
  }
  let m = 0;
  for (let i = 0; i < count; i++) if (maxima[i] > m) m = maxima[i];
  if (m > 0) out[0] = 255 / m;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Colouring. A 256-entry table per tile folds normalisation, threshold and opacity into the
// colormap; the per-pixel loop is then one table lookup.

/**
 * Fill `out` (256 packed RGBA) so that out[stored] is the overlay colour of a stored value:
 * transparent below `threshold` (0..1 of the display scale), else the colormap colour at the
 * display value with alpha = opacity.
 */
export function buildFrameLut(
  rgb: Uint8Array,
  opacity: number,
  threshold: number,
  a: number,
  b: number,
  out: Uint32Array,
): Uint32Array {
  const alpha = Math.max(0, Math.min(255, Math.round(opacity * 255)));
  const t = Math.max(0, Math.min(1, threshold)) * 255;
  for (let s = 0; s < 256; s++) {
    const v = a * s + b;
    if (v < t || alpha === 0) {
      out[s] = 0;
      continue;
    }
    const i = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    out[s] = packRGBA(rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], alpha);
  }
  return out;
}

/** The per-frame loop: out[k] = lut[map[offset + k]] for k < length. */
export function colorizeMap(map: Uint8Array, offset: number, length: number, lut: Uint32Array, out: Uint32Array): void {
  for (let k = 0; k < length; k++) out[k] = lut[map[offset + k]];
}

// Maps are stored at the explained layer's resolution (e.g. 7×7) and upsampled here, in value
// space (like torch's interpolate(bilinear, align_corners=False) / cv2.resize), before colouring:
// interpolating colours instead would blend e.g. jet's blue and red into purple.

/** Source indices and fixed-point weights (0..1024) of one axis of a bilinear resize. */
export interface ResampleAxis {
  i0: Int32Array;
  i1: Int32Array;
  w: Int32Array;
}

const W_BITS = 10;
const W_ONE = 1 << W_BITS;

export function resampleAxis(src: number, dst: number): ResampleAxis {
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w = new Int32Array(dst);
  const scale = src / dst;
  for (let d = 0; d < dst; d++) {
    const x = Math.max(0, (d + 0.5) * scale - 0.5);
    const f = Math.min(Math.floor(x), src - 1);
    i0[d] = f;
    i1[d] = Math.min(f + 1, src - 1);
    w[d] = i0[d] === i1[d] ? 0 : Math.round((x - f) * W_ONE);
  }
  return { i0, i1, w };
}

/**
 * The per-frame loop for a map smaller than its image: bilinear upsampling of the stored values of
 * one map (at `offset`, `srcWidth` × `srcHeight`) to ax × ay samples, coloured through `lut` into
 * `out`. Separable, in fixed point: `rows` (at least srcHeight × ax samples) holds the horizontal
 * pass.
 */
export function colorizeResampled(
  map: Uint8Array,
  offset: number,
  srcWidth: number,
  srcHeight: number,
  ax: ResampleAxis,
  ay: ResampleAxis,
  lut: Uint32Array,
  out: Uint32Array,
  rows: Int32Array,
): void {
  const dw = ax.w.length;
  const dh = ay.w.length;
  const { i0: x0, i1: x1, w: wx } = ax;
  for (let y = 0, r = 0; y < srcHeight; y++) {
    const base = offset + y * srcWidth;
    for (let x = 0; x < dw; x++, r++) {
      const a = map[base + x0[x]];
      rows[r] = (a << W_BITS) + (map[base + x1[x]] - a) * wx[x];
    }
  }
  const half = 1 << (2 * W_BITS - 1);
  const shift = 2 * W_BITS;
  let k = 0;
  for (let y = 0; y < dh; y++) {
    const r0 = ay.i0[y] * dw;
    const r1 = ay.i1[y] * dw;
    const wy = ay.w[y];
    const wy0 = W_ONE - wy;
    for (let x = 0; x < dw; x++) out[k++] = lut[(rows[r0 + x] * wy0 + rows[r1 + x] * wy + half) >> shift];
  }
}

// ---------------------------------------------------------------------------------------------
// Prefetch.

/** Bytes of decoded maps prefetched around the shown step (its neighbours first, both ways). */
export const PREFETCH_BYTES = 16 * 2 ** 20;

/**
 * How many steps on each side of the shown one to prefetch: at least 2, and as many as fit
 * PREFETCH_BYTES when a step's maps take `bytesPerStep` (small maps: every step, so scrubbing a
 * slider never waits for the network once the first frames have loaded).
 */
export function prefetchRadius(bytesPerStep: number, count: number): number {
  if (bytesPerStep <= 0) return 2;
  return Math.max(2, Math.min(count, Math.floor(PREFETCH_BYTES / bytesPerStep / 2)));
}

/** Indices to prefetch around `index` (nearest first; further ahead when playing forward). */
export function prefetchOrder(index: number, count: number, playing: boolean, radius = 2): number[] {
  const out: number[] = [];
  if (count <= 0 || index < 0) return out;
  const seen = new Set<number>([index]);
  const push = (i: number) => {
    if (playing) i = ((i % count) + count) % count;
    if (i >= 0 && i < count && !seen.has(i)) {
      seen.add(i);
      out.push(i);
    }
  };
  if (playing) {
    for (let d = 1; d <= radius + 2; d++) push(index + d);
  } else {
    for (let d = 1; d <= radius; d++) {
      push(index + d);
      push(index - d);
    }
  }
  return out;
}
