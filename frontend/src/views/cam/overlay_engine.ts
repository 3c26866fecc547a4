// The overlay drawing engine. Tiles (one <canvas> per image × run × method) register themselves;
// any change of the frame model, the display settings or a finished decode schedules ONE redraw
// on the next animation frame, which paints every tile: the probe image, then the map coloured
// through a per-tile 256-entry table (normalisation, threshold and opacity folded into the
// colormap) via putImageData on an offscreen canvas of the map's size, scaled with bilinear
// smoothing. Buffers are cached per map size, so a frame allocates no pixel memory.
import { effect } from "@preact/signals";
import { decodeImageSprite, decodeMapSprite, mapMaxima, SpriteStore, type DecodedImages, type DecodedMaps } from "../../core/sprites";
import { reloadTick } from "../../core/state";
import { colormapRGB, type ColormapName } from "../../lib/colormaps";
import { spriteOffset } from "../../lib/sprite_math";
import { buildFrameLut, colorizeMap, colorizeResampled, normalizationAffine, prefetchOrder, prefetchRadius, resampleAxis, type MapNormalization, type ResampleAxis } from "./overlay_math";
import { urlsAtStep, type FrameModel, type Slot, type TileSource } from "./state";

export interface Settings {
  colormap: ColormapName;
  opacity: number;
  threshold: number;
  norm: MapNormalization;
}

export interface TileRef {
  canvas: HTMLCanvasElement;
  slot: number;
  method: string;
  image: number;
  /** CSS width in px; the height follows the probe's aspect ratio. */
  size: number;
}

interface Scratch {
  canvas: OffscreenCanvas | HTMLCanvasElement;
  ctx: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;
  image: ImageData;
  pixels: Uint32Array;
}

/** Decoded map sprites: up to ~96 MB of 8-bit maps (e.g. 120 steps of 16 maps of 224²). */
export const mapStore = new SpriteStore<DecodedMaps>(decodeMapSprite, (d) => d.data.byteLength, 96 * 2 ** 20, 4);
/** Decoded probe sprites (ImageBitmaps, closed on eviction). */
export const imageStore = new SpriteStore<DecodedImages>(
  decodeImageSprite,
  (d) => d.width * d.spriteHeight * 4,
  64 * 2 ** 20,
  2,
  (d) => d.bitmap.close(),
);

export interface EngineStatus {
  /** The current frame waits for data. */
  pending: boolean;
  /** A map or probe sprite of the current frame failed to load. */
  error: string | null;
}

export class OverlayEngine {
  private readonly tiles: TileRef[] = [];
  private raf = 0;
  private readonly lut = new Uint32Array(256);
  private readonly affine = new Float64Array(2);
  private readonly scratch = new Map<number, Scratch>();
  private readonly axes = new Map<number, ResampleAxis>();
  /** Horizontal pass of the upsampling (grown once to the largest map × image width). */
  private rows = new Int32Array(0);
  private readonly disposers: (() => void)[] = [];
  private draws = 0;
  private lastPending = false;
  private lastError: string | null = null;
  /** The step whose slot-0 tiles are completely drawn (null while the current frame is pending). */
  drawnStep: number | null = null;
  grid: HTMLElement | null = null;

  constructor(
    private readonly model: { value: FrameModel | null; peek(): FrameModel | null },
    private readonly settings: { value: Settings; peek(): Settings },
    private readonly isPlaying: { value: boolean; peek(): boolean },
    private readonly onStatus?: (status: EngineStatus) => void,
  ) {
    this.disposers.push(mapStore.onChange(() => this.requestDraw()));
    this.disposers.push(imageStore.onChange(() => this.requestDraw()));
    // TensorBoard's reload: retry what failed (e.g. a step that was not written yet).
    this.disposers.push(
      effect(() => {
        if (reloadTick.value === 0) return;
        mapStore.clearErrors();
        imageStore.clearErrors();
      }),
    );
    this.disposers.push(
      effect(() => {
        const m = this.model.value;
        void this.settings.value;
        const play = this.isPlaying.value;
        this.fetchFor(m, play);
        this.requestDraw();
      }),
    );
  }

  dispose(): void {
    for (const d of this.disposers) d();
    if (this.raf) cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.tiles.length = 0;
  }

  register(tile: TileRef): void {
    this.tiles.push(tile);
    this.requestDraw();
  }

  unregister(tile: TileRef): void {
    const i = this.tiles.indexOf(tile);
    if (i >= 0) this.tiles.splice(i, 1);
  }

  requestDraw(): void {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      this.draw();
    });
  }

  /** Tell the sprite stores what the current frame and its neighbours need. */
  private fetchFor(m: FrameModel | null, play: boolean): void {
    if (!m) {
      mapStore.want([]);
      return;
    }
    const images: string[] = [];
    for (const slot of m.slots) if (slot.probeUrl && !images.includes(slot.probeUrl)) images.push(slot.probeUrl);
    imageStore.want(images);
    const urls: string[] = [];
    for (const slot of m.slots) for (const src of slot.sources) if (src.url) urls.push(src.url);
    let bytesPerStep = 0;
    for (const slot of m.slots) {
      for (const src of slot.sources) if (src.series) bytesPerStep += src.series.numImages * src.series.height * src.series.width;
    }
    const radius = prefetchRadius(bytesPerStep, m.steps.length);
    for (const i of prefetchOrder(m.index, m.steps.length, play, radius)) urlsAtStep(m, m.steps[i], urls);
    mapStore.want(urls);
  }

  private scratchFor(w: number, h: number): Scratch | null {
    const key = w * 65536 + h;
    let s = this.scratch.get(key);
    if (!s) {
      const canvas: OffscreenCanvas | HTMLCanvasElement =
        typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(w, h) : document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext("2d") as Scratch["ctx"] | null;
      if (!ctx) return null;
      const image = ctx.createImageData(w, h);
      s = { canvas, ctx, image, pixels: new Uint32Array(image.data.buffer) };
      this.scratch.set(key, s);
    }
    return s;
  }

  private axis(src: number, dst: number): ResampleAxis {
    const key = src * 65536 + dst;
    let a = this.axes.get(key);
    if (!a) {
      a = resampleAxis(src, dst);
      this.axes.set(key, a);
    }
    return a;
  }

  /**
   * Paint image `image` of `slot` with the map of `src` into ctx at (x, y, w, h). Returns whether
   * the map was drawn (false: not decoded yet, or no map at this step: the image alone).
   */
  paint(
    ctx: CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D,
    slot: Slot,
    src: TileSource | undefined,
    image: number,
    x: number,
    y: number,
    w: number,
    h: number,
    settings: Settings,
  ): boolean {
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "low"; // bilinear
    const probe = slot.probeUrl ? imageStore.get(slot.probeUrl) : undefined;
    if (probe) {
      ctx.drawImage(probe.bitmap, 0, image * slot.height, probe.width, slot.height, x, y, w, h);
    } else {
      ctx.fillStyle = "#808080";
      ctx.fillRect(x, y, w, h);
    }
    if (!src || !src.url || !src.series) return false;
    const maps = mapStore.get(src.url);
    if (!maps) return false;
    const mh = src.series.height > 0 ? src.series.height : maps.spriteHeight;
    const mw = maps.width;
    const maxima = mapMaxima(maps, mh);
    if (image >= maxima.length) return false;
    // Maps smaller than the image are upsampled (in value space) to the image's resolution, or to
    // the tile's when that is smaller.
    const ow = Math.max(mw, Math.min(slot.width, Math.round(w)));
    const oh = Math.max(mh, Math.min(slot.height, Math.round(h)));
    const up = ow > mw || oh > mh;
    const s = this.scratchFor(ow, oh);
    if (!s) return false;
    const j = src.step === null ? -1 : src.series.steps.indexOf(src.step);
    const rawMin = j >= 0 ? src.series.rawMin?.[j] : null;
    const rawMax = j >= 0 ? src.series.rawMax?.[j] : null;
    const [a, b] = normalizationAffine(settings.norm, image, maxima.length, maxima, rawMin, rawMax, this.affine);
    buildFrameLut(colormapRGB(settings.colormap), settings.opacity, settings.threshold, a, b, this.lut);
    const offset = spriteOffset(image, mh, mw);
    if (up) {
      if (this.rows.length < mh * ow) this.rows = new Int32Array(mh * ow);
      colorizeResampled(maps.data, offset, mw, mh, this.axis(mw, ow), this.axis(mh, oh), this.lut, s.pixels, this.rows);
    }
    else colorizeMap(maps.data, offset, mw * mh, this.lut, s.pixels);
    s.ctx.putImageData(s.image, 0, 0);
    // Bilinear scaling of the coloured overlay to the tile.
    ctx.drawImage(s.canvas, 0, 0, ow, oh, x, y, w, h);
    return true;
  }

  private draw(): void {
    const m = this.model.peek();
    const settings = this.settings.peek();
    if (!m) return;
    const start = performance.now();
    const dpr = window.devicePixelRatio || 1;
    let complete = true;
    let error: string | null = null;
    let painted = 0;
    for (let t = 0; t < this.tiles.length; t++) {
      const tile = this.tiles[t];
      const slot = m.slots[tile.slot];
      if (!slot) continue;
      let src: TileSource | undefined;
      for (let k = 0; k < slot.sources.length; k++) if (slot.sources[k].method === tile.method) src = slot.sources[k];
      const probeError = slot.probeUrl ? imageStore.error(slot.probeUrl) : undefined;
      const mapError = src?.url ? mapStore.error(src.url) : undefined;
      if (probeError || mapError) error ??= (probeError ?? mapError)!;
      const hasProbe = !!slot.probeUrl && imageStore.has(slot.probeUrl);
      const hasMap = !src || !src.url || mapStore.has(src.url) || !!mapError;
      if (!(hasProbe || probeError) || !hasMap) {
        // Keep the previous frame until this one's data is decoded.
        if (tile.slot === 0) complete = false;
        continue;
      }
      const canvas = tile.canvas;
      const cssW = tile.size;
      const cssH = Math.max(1, Math.round((tile.size * slot.height) / Math.max(1, slot.width)));
      const w = Math.max(1, Math.round(cssW * dpr));
      const h = Math.max(1, Math.round(cssH * dpr));
      if (canvas.width !== w) canvas.width = w;
      if (canvas.height !== h) canvas.height = h;
      const ctx = canvas.getContext("2d");
      if (!ctx) continue;
      this.paint(ctx, slot, src, tile.image, 0, 0, w, h, settings);
      canvas.dataset.step = src?.step === null || src?.step === undefined ? "" : String(src.step);
      painted++;
    }
    const end = performance.now();
    if (painted > 0) {
      try {
        performance.measure("insight-overlay-draw", { start, end, detail: { tiles: painted, step: m.step } });
      } catch {
        // Older browsers without the options form of measure().
      }
    }
    this.draws++;
    if (complete) this.drawnStep = m.step;
    if (this.lastPending !== !complete || this.lastError !== error) {
      this.lastPending = !complete;
      this.lastError = error;
      this.onStatus?.({ pending: !complete, error });
    }
    const grid = this.grid;
    if (grid) {
      grid.dataset.draws = String(this.draws);
      grid.dataset.drawMs = (end - start).toFixed(2);
      grid.dataset.pending = complete ? "0" : "1";
      if (complete && m.step !== null) grid.dataset.step = String(m.step);
    }
  }
}
