// The selected run's feature-map, filter and feature-visualisation layers, shared by the Feature maps
// view and its settings:
// the list (refetched on TensorBoard's reload), the layer picker's entries, and the layer shown.
import { useEffect, useState } from "preact/hooks";
import { describe } from "../../core/resource";
import { reloadTick } from "../../core/state";
import type { FeatureMapLayersResponse, FeatureVisLayer } from "./api";
import { fmLayer, loadLayers, type RunTileLayers } from "./state";

type Layers = FeatureMapLayersResponse & { featureVis?: FeatureVisLayer[] };

/** The selected run's layers list (shared by the view and its settings). */
export function useRunLayers(run: string | null): { data: RunTileLayers | null; error: string | null } {
  const reload = reloadTick.value;
  const [state, setState] = useState<{ data: RunTileLayers | null; error: string | null }>({ data: null, error: null });
  useEffect(() => {
    if (run === null) return;
    let live = true;
    loadLayers(run, reload).then(
      (data) => live && setState({ data, error: null }),
      (e: unknown) => live && setState({ data: null, error: describe(e) }),
    );
    return () => {
      live = false;
    };
  }, [run, reload]);
  return state.data && state.data.run === run ? state : { data: null, error: state.error };
}

/** The picker's entries: every layer with feature maps, filters or feature visualisations, in model order. */
export function layerNames(data: Layers): { name: string; note: string }[] {
  const out = new Map<string, { name: string; note: string; order: number }>();
  for (const l of data.featureMaps) out.set(l.layer, { name: l.layer, note: l.moduleType, order: l.order });
  for (const f of data.filters) {
    const e = out.get(f.layer);
    if (e) e.note += " + filters";
    else out.set(f.layer, { name: f.layer, note: f.moduleType + " filters", order: f.order });
  }
  for (const v of data.featureVis ?? []) {
    const e = out.get(v.layer);
    if (e) e.note += " + feature vis";
    else out.set(v.layer, { name: v.layer, note: v.moduleType + " feature vis", order: v.order });
  }
  return [...out.values()].sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

/** The layer to show: the chosen one if the run has it, else the first layer with feature maps and feature
 * visualisations, else with feature maps and filters, else the first with feature maps, else the first. */
export function shownLayer(data: Layers): string | null {
  const names = layerNames(data).map((l) => l.name);
  const chosen = fmLayer.value;
  if (chosen !== null && names.includes(chosen)) return chosen;
  const withVis = data.featureMaps.find((l) => data.featureVis?.some((v) => v.layer === l.layer));
  if (withVis) return withVis.layer;
  const withFilters = data.featureMaps.find((l) => data.filters.some((f) => f.layer === l.layer));
  return withFilters?.layer ?? data.featureMaps[0]?.layer ?? names[0] ?? null;
}
