// The "Feature maps" view: pick a layer of the selected run (left panel), see its feature maps over
// training and, for convolutions whose weights were recorded, its filters (FeatureMapsPanel).
import { useEffect, useState } from "preact/hooks";
import { describe } from "../data";
import type { FeatureMapLayersResponse } from "../fmaps_api";
import { fmLayer, loadLayers } from "../fmaps_state";
import { reloadTick, selectedRun } from "../state";
import { ErrorMessage } from "./common";
import { SelectField } from "./fields";
import { FeatureMapsPanel } from "./FeatureMapsPanel";

/** The selected run's layers list (shared by the view and its settings). */
function useRunLayers(run: string | null): { data: FeatureMapLayersResponse | null; error: string | null } {
  const reload = reloadTick.value;
  const [state, setState] = useState<{ data: FeatureMapLayersResponse | null; error: string | null }>({ data: null, error: null });
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

function layerNames(data: FeatureMapLayersResponse): { name: string; note: string }[] {
  const out = new Map<string, { name: string; note: string; order: number }>();
  for (const l of data.featureMaps) out.set(l.layer, { name: l.layer, note: l.moduleType, order: l.order });
  for (const f of data.filters) {
    const e = out.get(f.layer);
    if (e) e.note += " + filters";
    else out.set(f.layer, { name: f.layer, note: f.moduleType + " filters", order: f.order });
  }
  return [...out.values()].sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

/** The layer to show: the chosen one if the run has it, else the first layer with feature maps and filters,
 * else the first with feature maps, else the first (filters only). */
function shownLayer(data: FeatureMapLayersResponse): string | null {
  const names = layerNames(data).map((l) => l.name);
  const chosen = fmLayer.value;
  if (chosen !== null && names.includes(chosen)) return chosen;
  const withFilters = data.featureMaps.find((l) => data.filters.some((f) => f.layer === l.layer));
  return withFilters?.layer ?? data.featureMaps[0]?.layer ?? names[0] ?? null;
}

export function FeatureMapsSettings() {
  const run = selectedRun.value;
  const { data } = useRunLayers(run);
  if (!data) return null;
  const names = layerNames(data);
  if (!names.length) return null;
  const current = shownLayer(data);
  return (
    <div class="ins-section" data-testid="fmap-settings">
      <div class="ins-section-title">Feature maps</div>
      <SelectField
        id="ins-fm-layer"
        label="Layer"
        testid="fmap-layer"
        value={current ?? ""}
        options={names.map((l) => ({ value: l.name, label: `${l.name} (${l.note})` }))}
        onChange={(v) => {
          fmLayer.value = v;
        }}
      />
      <div class="ins-hint ins-hint-flat">Colours, scale and channels are set above the grid.</div>
    </div>
  );
}

export function FeatureMapsView() {
  const run = selectedRun.value;
  const { data, error } = useRunLayers(run);
  let body;
  if (run === null) body = <div class="ins-muted">Select a run.</div>;
  else if (error) body = <ErrorMessage title="Could not load the run's feature maps" message={error} />;
  else if (!data) body = <div class="ins-loading">Loading feature maps…</div>;
  else {
    const layer = shownLayer(data);
    body =
      layer === null ? (
        <div class="ins-empty" data-testid="fmap-empty">
          <h2>No feature maps in this run</h2>
          <p>
            Give <code>watch</code> a fixed batch of probe images and Insight records, every <code>maps_every</code> steps, the
            most active channels of every watched layer on it, and the first convolution's filters:
          </p>
          <pre>{`writer.watch(model, probe=images[:16], maps_every=100, maps_k=16)`}</pre>
        </div>
      ) : (
        <FeatureMapsPanel key={run + "\u0000" + layer} run={run} layer={layer} />
      );
  }
  return (
    <section class="ins-card ins-fm" data-testid="fmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Feature maps</h2>
        {run !== null ? <span class="ins-card-sub">{run}</span> : null}
      </div>
      {body}
    </section>
  );
}
