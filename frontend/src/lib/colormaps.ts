// Colormap lookup tables for the canvas heatmaps. The RGB data lives in the generated
// colormap_tables.ts (see frontend/scripts/gen_colormaps.mjs for sources and licences).
import { COLORMAP_HEX } from "./colormap_tables";

export type ColormapName = keyof typeof COLORMAP_HEX;
export const COLORMAP_NAMES = Object.keys(COLORMAP_HEX) as ColormapName[];
export const DEFAULT_COLORMAP: ColormapName = "viridis";

export function isColormapName(name: string): name is ColormapName {
  return Object.prototype.hasOwnProperty.call(COLORMAP_HEX, name);
}

const rgbCache = new Map<ColormapName, Uint8Array>();
const lutCache = new Map<ColormapName, Uint32Array>();

/** 256 × [r, g, b] bytes. */
export function colormapRGB(name: ColormapName): Uint8Array {
  let rgb = rgbCache.get(name);
  if (!rgb) {
    const hex = COLORMAP_HEX[name];
    rgb = new Uint8Array(256 * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    rgbCache.set(name, rgb);
  }
  return rgb;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Pack RGBA into one uint32 in the platform's byte order, for writing into ImageData via a Uint32Array view. */
export function packRGBA(r: number, g: number, b: number, a: number): number {
  return LITTLE_ENDIAN
    ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0
    : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}

/** 256-entry opaque packed-RGBA LUT. */
export function colormapLUT(name: ColormapName): Uint32Array {
  let lut = lutCache.get(name);
  if (!lut) {
    const rgb = colormapRGB(name);
    lut = new Uint32Array(256);
    for (let i = 0; i < 256; i++) lut[i] = packRGBA(rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2], 255);
    lutCache.set(name, lut);
  }
  return lut;
}

/** CSS colour of the colormap at t in [0, 1]. */
export function colormapCss(name: ColormapName, t: number): string {
  const rgb = colormapRGB(name);
  const i = Math.max(0, Math.min(255, Math.round(t * 255)));
  return `rgb(${rgb[i * 3]}, ${rgb[i * 3 + 1]}, ${rgb[i * 3 + 2]})`;
}
