// Client of the feature-map, filter and feature-visualisation routes (docs/http-api.md, "Feature maps
// and filters"). Grids are PNGs of 8-bit tiles; each tile's [min, max] comes with the step's JSON.
// Feature visualisations are one PNG strip per step, each tile stretched on its own (no scales).
import { DEFAULT_PROBE, getJson } from "../../core/api";

export type MapLayout = "spatial" | "volume" | "sequence" | "tokens" | "vector";
export type FilterLayout = "rgb" | "gray";

export interface FeatureMapLayer {
  layer: string;
  probe: string;
  moduleType: string;
  shape: number[];
  order: number;
  layout: MapLayout;
  /** The layer's channel index of each stored column ([] for vectors). */
  channels: number[];
  numChannels: number;
  userChannels: boolean;
  numImages: number;
  /** Size of one stored tile. */
  height: number;
  width: number;
  gridSide: number;
  classTokens: number;
  depthIndex: number | null;
  /** Tiles are block means over poolFactor × poolFactor blocks (1: not pooled) of sourceHeight × sourceWidth maps. */
  poolFactor?: number;
  sourceHeight?: number;
  sourceWidth?: number;
  /** maps_bits: the codes are multiples of 255 / L, L the largest divisor of 255 ≤ 2^bits − 1 (8 in older runs). */
  bits?: number;
  steps: number[];
}

export interface FilterLayer {
  layer: string;
  moduleType: string;
  shape: number[];
  order: number;
  layout: FilterLayout;
  filters: number[];
  inputChannels: number[];
  numFilters: number;
  height: number;
  width: number;
  steps: number[];
}

/** A layer's feature visualisations: tile j of each step's strip is the input channel channels[j] wants. */
export interface FeatureVisLayer {
  layer: string;
  moduleType: string;
  shape: number[];
  order: number;
  layout: FilterLayout;
  channels: number[];
  numChannels: number;
  userChannels: boolean;
  numImages: number;
  height: number;
  width: number;
  steps: number[];
}

export interface FeatureVisLayersResponse {
  run: string;
  featureVis: FeatureVisLayer[];
}

export interface FeatureMapLayersResponse {
  run: string;
  probe: string;
  featureMaps: FeatureMapLayer[];
  filters: FilterLayer[];
}

/** A series at one step: `scaleMin[row][column]`, `scaleMax[row][column]` of every stored tile. */
export interface TileScales {
  run: string;
  layer: string;
  step: number;
  scaleMin: (number | null)[][] | null;
  scaleMax: (number | null)[][] | null;
}

export type TileKind = "feature_map" | "filter";

function params(run: string, layer: string, probe: string, step?: number): Record<string, string> {
  const p: Record<string, string> = { run, layer };
  if (probe !== DEFAULT_PROBE) p.probe = probe;
  if (step !== undefined) p.step = String(step);
  return p;
}

export function fetchFeatureMapLayers(run: string, signal?: AbortSignal): Promise<FeatureMapLayersResponse> {
  return getJson<FeatureMapLayersResponse>("feature_map_layers", { run }, signal);
}

export function fetchTileScales(kind: TileKind, run: string, layer: string, step: number, probe = DEFAULT_PROBE, signal?: AbortSignal): Promise<TileScales> {
  return getJson<TileScales>(kind === "feature_map" ? "feature_maps" : "filters", params(run, layer, probe, step), signal);
}

/** URL of one step's PNG grid (relative to the plugin base, like every route). */
export function tileImageUrl(kind: TileKind, run: string, layer: string, step: number, probe = DEFAULT_PROBE): string {
  const route = kind === "feature_map" ? "feature_map_image" : "filter_image";
  return "./" + route + "?" + new URLSearchParams(params(run, layer, probe, step)).toString();
}

export function fetchFeatureVisLayers(run: string, signal?: AbortSignal): Promise<FeatureVisLayersResponse> {
  return getJson<FeatureVisLayersResponse>("feature_vis_layers", { run }, signal);
}

/** URL of one step's feature-visualisation strip. */
export function featureVisImageUrl(run: string, layer: string, step: number): string {
  return "./feature_vis_image?" + new URLSearchParams({ run, layer, step: String(step) }).toString();
}
