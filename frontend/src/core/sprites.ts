// Decoded sprites (probe images and per-step map sprites), fetched and decoded once, kept in an LRU.
// `want(urls)` states what the current frame and its prefetch need, most important first: fetches
// of anything no longer wanted are aborted (stale slider positions), at most `concurrency` run at
// once, and listeners hear about every finished decode so the engine can redraw.
import { LruCache } from "../lib/lru";
import { extractChannel, imageMaxima, spriteCount } from "../lib/sprite_math";
import { ApiError, fetchBlob } from "./api";

export type Decoder<T> = (url: string, signal: AbortSignal) => Promise<T>;

function describe(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.message} (HTTP ${e.status})` : e.message;
  return e instanceof Error ? e.message : String(e);
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}

export class SpriteStore<T> {
  private readonly cache: LruCache<string, T>;
  private readonly inflight = new Map<string, AbortController>();
  private readonly errors = new Map<string, string>();
  private queue: string[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly decode: Decoder<T>,
    private readonly cost: (value: T) => number,
    maxCost: number,
    private readonly concurrency = 4,
    onEvict?: (value: T) => void,
  ) {
    this.cache = new LruCache<string, T>(maxCost, Infinity, onEvict ? (_k, v) => onEvict(v) : undefined);
  }

  /** The decoded value (marked as recently used), or undefined. */
  get(url: string): T | undefined {
    return this.cache.get(url);
  }

  has(url: string): boolean {
    return this.cache.has(url);
  }

  error(url: string): string | undefined {
    return this.errors.get(url);
  }

  isLoading(url: string): boolean {
    return this.inflight.has(url) || this.queue.includes(url);
  }

  get cachedCount(): number {
    return this.cache.size;
  }

  get inflightCount(): number {
    return this.inflight.size;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forget failures (e.g. on TensorBoard's reload) so they are retried. */
  clearErrors(): void {
    this.errors.clear();
  }

  clear(): void {
    for (const c of this.inflight.values()) c.abort();
    this.inflight.clear();
    this.queue = [];
    this.cache.clear();
    this.errors.clear();
  }

  /** Declare the wanted URLs in priority order; drops fetches of everything else. */
  want(urls: readonly string[]): void {
    const wanted = new Set(urls);
    for (const [url, ctrl] of this.inflight) {
      if (!wanted.has(url)) {
        ctrl.abort();
        this.inflight.delete(url);
      }
    }
    this.queue = [];
    for (const url of wanted) {
      if (!this.cache.has(url) && !this.inflight.has(url) && !this.errors.has(url)) this.queue.push(url);
    }
    this.pump();
  }

  private pump(): void {
    while (this.inflight.size < this.concurrency && this.queue.length) {
      const url = this.queue.shift()!;
      const ctrl = new AbortController();
      this.inflight.set(url, ctrl);
      this.decode(url, ctrl.signal).then(
        (value) => {
          if (this.inflight.get(url) !== ctrl) return; // dropped meanwhile
          this.inflight.delete(url);
          this.cache.set(url, value, this.cost(value));
          this.notify();
          this.pump();
        },
        (e: unknown) => {
          if (this.inflight.get(url) !== ctrl) return;
          this.inflight.delete(url);
          if (!isAbort(e)) {
            this.errors.set(url, describe(e));
            this.notify();
          }
          this.pump();
        },
      );
    }
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }
}

// ---------------------------------------------------------------------------------------------
// Browser decoders.

export interface DecodedMaps {
  /** Width and total height of the sprite (maps stacked vertically). */
  width: number;
  spriteHeight: number;
  /** Row-major grey values of the whole sprite. */
  data: Uint8Array;
  /** Per-map maxima, computed on first use for a given map height. */
  maxima: Uint8Array | null;
  maximaHeight: number;
}

export interface DecodedImages {
  bitmap: ImageBitmap;
  width: number;
  spriteHeight: number;
}

/** Per-map maximum of the stored values of a decoded sprite of maps `height` rows tall (cached). */
export function mapMaxima(d: DecodedMaps, height: number): Uint8Array {
  if (!d.maxima || d.maximaHeight !== height) {
    const count = spriteCount(d.spriteHeight, height);
    d.maxima = imageMaxima(d.data, count, d.width * height);
    d.maximaHeight = height;
  }
  return d.maxima;
}

type Scratch = { canvas: OffscreenCanvas | HTMLCanvasElement; ctx: OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D };
let scratch: Scratch | null = null;

function scratchContext(width: number, height: number): Scratch {
  if (!scratch) {
    const canvas: OffscreenCanvas | HTMLCanvasElement =
      typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(1, 1) : document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true }) as Scratch["ctx"] | null;
    if (!ctx) throw new Error("2D canvas is not available");
    scratch = { canvas, ctx };
  }
  if (scratch.canvas.width !== width) scratch.canvas.width = width;
  if (scratch.canvas.height !== height) scratch.canvas.height = height;
  return scratch;
}

/** Decode a grayscale map sprite into exact 8-bit values (no colour-space conversion). */
export const decodeMapSprite: Decoder<DecodedMaps> = async (url, signal) => {
  const blob = await fetchBlob(url, signal);
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  try {
    signal.throwIfAborted();
    const w = bitmap.width;
    const h = bitmap.height;
    const s = scratchContext(w, h);
    s.ctx.clearRect(0, 0, w, h);
    s.ctx.drawImage(bitmap, 0, 0);
    const rgba = s.ctx.getImageData(0, 0, w, h).data;
    const data = new Uint8Array(w * h);
    extractChannel(rgba, data);
    return { width: w, spriteHeight: h, data, maxima: null, maximaHeight: 0 };
  } finally {
    bitmap.close();
  }
};

/** Decode the probe's RGB sprite into an ImageBitmap that tiles draw from directly. */
export const decodeImageSprite: Decoder<DecodedImages> = async (url, signal) => {
  const blob = await fetchBlob(url, signal);
  const bitmap = await createImageBitmap(blob);
  if (signal.aborted) {
    bitmap.close();
    signal.throwIfAborted();
  }
  return { bitmap, width: bitmap.width, spriteHeight: bitmap.height };
};
