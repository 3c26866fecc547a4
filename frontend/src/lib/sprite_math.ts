// Sprite geometry (no DOM): maps and probe images are sent as N images stacked vertically in one PNG;
// these slice them and read a decoded grayscale sprite.

/** Source rectangle of image `index` in a vertical sprite of `height`×`width` images. */
export function spriteRect(index: number, height: number, width: number): { sx: number; sy: number; sw: number; sh: number } {
  return { sx: 0, sy: index * height, sw: width, sh: height };
}

/** Offset of image `index` in a row-major single-channel sprite buffer. */
export function spriteOffset(index: number, height: number, width: number): number {
  return index * height * width;
}

/** Number of whole images in a sprite `spriteHeight` rows tall. */
export function spriteCount(spriteHeight: number, height: number): number {
  return height > 0 ? Math.floor(spriteHeight / height) : 0;
}

/** Copy the red channel of RGBA pixels (a decoded grayscale PNG) into `out` (length = pixels). */
export function extractChannel(rgba: ArrayLike<number>, out: Uint8Array, channel = 0): void {
  const n = out.length;
  for (let k = 0, j = channel; k < n; k++, j += 4) out[k] = rgba[j];
}

/** Per-image maximum of a single-channel sprite buffer holding `count` images of `pixels` values. */
export function imageMaxima(data: Uint8Array, count: number, pixels: number, out: Uint8Array = new Uint8Array(count)): Uint8Array {
  for (let i = 0; i < count; i++) {
    let m = 0;
    const end = (i + 1) * pixels;
    for (let k = i * pixels; k < end; k++) if (data[k] > m) m = data[k];
    out[i] = m;
  }
  return out;
}
