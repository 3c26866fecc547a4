// State of the feature-map view and panels: display settings shared by every panel (so the layer
// panel and the view agree), the view's selected layer, and caches of the fetched data (a step's
// scales and grids never change once written; layer lists are refetched on TensorBoard's reload).
import { signal } from "@preact/signals";
import { DEFAULT_PROBE, fetchBlob, fetchProbe, type ProbeResponse } from "../../core/api";
import { decodeImageSprite, decodeMapSprite, type DecodedImages, type DecodedMaps } from "../../core/sprites";
import type { ColormapName } from "../../lib/colormaps";
import { LruCache } from "../../lib/lru";
import {
  featureVisImageUrl,
  fetchFeatureMapLayers,
  fetchFeatureVisLayers,
  fetchTileScales,
  tileImageUrl,
  type FeatureMapLayersResponse,
  type FeatureVisLayer,
  type TileKind,
  type TileScales,
} from "./api";
import type { Scale, TokenView } from "./math";

export const FMAPS_VIEW = "fmaps";
export const DEFAULT_FMAP_COLORMAP: ColormapName = "viridis";
export const MIN_FMAP_SIZE = 24;
export const MAX_FMAP_SIZE = 256;

export const fmColormap = signal<ColormapName>(DEFAULT_FMAP_COLORMAP);
export const fmScale = signal<Scale>("map");
export const fmTileSize = signal(64);
export const fmTokenView = signal<TokenView>("tokens");
/** Channel picker text per layer ("" = every recorded channel). */
export const fmChannelText = signal<Record<string, string>>({});
/** The layer shown by the Feature maps view. */
export const fmLayer = signal<string | null>(null);

/** A decoded RGB(A) grid (filters with 3 input channels). */
export interface DecodedRgb {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
}

async function decodeRgbGrid(url: string, signal: AbortSignal): Promise<DecodedRgb> {
  const blob = await fetchBlob(url, signal);
  const bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  try {
    const canvas = document.createElement("canvas");
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    if (!ctx) throw new Error("2D canvas is not available");
    ctx.drawImage(bitmap, 0, 0);
    return { width: bitmap.width, height: bitmap.height, rgba: ctx.getImageData(0, 0, bitmap.width, bitmap.height).data };
  } finally {
    bitmap.close();
  }
}

/** Promise caches: failures are forgotten so that a later look retries. */
class PromiseCache<T> {
  private readonly cache: LruCache<string, Promise<T>>;
  constructor(entries: number) {
    this.cache = new LruCache<string, Promise<T>>(Infinity, entries);
  }
  get(key: string, load: () => Promise<T>): Promise<T> {
    let p = this.cache.get(key);
    if (!p) {
      p = load();
      this.cache.set(key, p);
      p.catch(() => {
        if (this.cache.peek(key) === p) this.cache.delete(key);
      });
    }
    return p;
  }
  clear(): void {
    this.cache.clear();
  }
}

const never = new AbortController().signal;
/** A run's feature-map and filter layers, and its layers with feature visualisations. */
export type RunTileLayers = FeatureMapLayersResponse & { featureVis: FeatureVisLayer[] };

const layerLists = new PromiseCache<RunTileLayers>(16);
const visStrips = new PromiseCache<ImageBitmap>(64);
const scales = new PromiseCache<TileScales>(512);
const grays = new PromiseCache<DecodedMaps>(192);
const rgbs = new PromiseCache<DecodedRgb>(64);
const probes = new PromiseCache<{ info: ProbeResponse; images: DecodedImages }>(8);

/** The run's layers with feature maps, filters and feature visualisations (`reload` is TensorBoard's
 * reload tick). */
export function loadLayers(run: string, reload: number): Promise<RunTileLayers> {
  return layerLists.get(JSON.stringify([run, reload]), async () => {
    const [maps, vis] = await Promise.all([fetchFeatureMapLayers(run), fetchFeatureVisLayers(run)]);
    return { ...maps, featureVis: vis.featureVis };
  });
}

/** One step's feature-visualisation strip, decoded (tiles are drawn from it as they are). */
export function loadVisStrip(run: string, layer: string, step: number): Promise<ImageBitmap> {
  const url = featureVisImageUrl(run, layer, step);
  return visStrips.get(url, async () => createImageBitmap(await fetchBlob(url, never), { colorSpaceConversion: "none", premultiplyAlpha: "none" }));
}

export interface StepTiles {
  scales: TileScales;
  gray: DecodedMaps | null;
  rgb: DecodedRgb | null;
}

/** Scales and decoded grid of one layer at one recorded step. */
export async function loadTiles(kind: TileKind, run: string, layer: string, step: number, rgb: boolean, probe = DEFAULT_PROBE): Promise<StepTiles> {
  const url = tileImageUrl(kind, run, layer, step, probe);
  const [s, image] = await Promise.all([
    scales.get(url, () => fetchTileScales(kind, run, layer, step, probe)),
    rgb ? rgbs.get(url, () => decodeRgbGrid(url, never)) : grays.get(url, () => decodeMapSprite(url, never)),
  ]);
  return rgb ? { scales: s, gray: null, rgb: image as DecodedRgb } : { scales: s, gray: image as DecodedMaps, rgb: null };
}

/** The probe's images (for the row headers), or null when the run has no such probe. */
export function loadProbe(run: string, probe: string, reload: number): Promise<{ info: ProbeResponse; images: DecodedImages }> {
  return probes.get(JSON.stringify([run, probe, reload]), async () => {
    const info = await fetchProbe(run, probe);
    const url = "./" + (info.imageUrl ?? "probe_image?" + new URLSearchParams({ run }).toString()).replace(/^\.\//, "") + "#stored=" + info.step;
    return { info, images: await decodeImageSprite(url, never) };
  });
}
