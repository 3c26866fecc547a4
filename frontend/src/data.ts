// Loaders: effects that fetch whenever the selection (or TensorBoard's reload tick) changes.
// A response is dropped when the selection changed meanwhile or a newer request was issued,
// and on reloads the previous data stays on screen until the new data arrives.
import { effect, batch, computed } from "@preact/signals";
import { fetchHeatmap, fetchLayerStats, fetchLayers, fetchRuns, ApiError } from "./api";
import {
  activeView,
  heatmap,
  layerStats,
  layers,
  reloadTick,
  runs,
  selectedLayer,
  selectedRun,
  selectedStat,
  type Loadable,
} from "./state";

export function describe(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.message} (HTTP ${e.status})` : e.message;
  return e instanceof Error ? e.message : String(e);
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}

/**
 * One resource keyed by the selection. `key` returns null when there is nothing to load.
 * Data is kept while a same-key refresh is in flight. On a key change it is cleared, unless
 * `keepPrevious` (the view then shows the previous data dimmed until the new data arrives,
 * which avoids layout jumps; responses carry their own run/stat/layer to tell them apart).
 */
export function resource<K extends unknown[], T>(
  target: { value: Loadable<T>; peek(): Loadable<T> },
  key: () => K | null,
  load: (k: K, signal: AbortSignal, show: (partial: T) => void) => Promise<T>,
  keepPrevious = false,
): void {
  let seq = 0;
  let lastKey = "";
  let controller: AbortController | null = null;
  effect(() => {
    void reloadTick.value;
    const k = key();
    const id = ++seq;
    controller?.abort();
    controller = null;
    if (k === null) {
      lastKey = "";
      target.value = { data: null, loading: false, error: null };
      return;
    }
    const keyString = JSON.stringify(k);
    const sameKey = keyString === lastKey;
    lastKey = keyString;
    const prev = target.peek();
    target.value = {
      data: sameKey || keepPrevious ? prev.data : null,
      loading: true,
      error: sameKey ? prev.error : null,
    };
    const ctrl = new AbortController();
    controller = ctrl;
    // A first answer to show while the loader asks for the rest (still loading).
    const show = (partial: T) => {
      if (id === seq && !ctrl.signal.aborted) target.value = { data: partial, loading: true, error: null };
    };
    load(k, ctrl.signal, show).then(
      (data) => {
        if (id !== seq) return; // stale: the selection changed or a newer request was made
        target.value = { data, loading: false, error: null };
      },
      (e: unknown) => {
        if (id !== seq || isAbort(e)) return;
        target.value = { data: sameKey ? target.peek().data : null, loading: false, error: describe(e) };
      },
    );
  });
}

/** The view that shows the activation-statistics heatmap (views/registry.ts). */
export const STATS_VIEW = "stats";

export function startLoaders(initial: { run?: string; layer?: string }): void {
  let pendingRun = initial.run ?? null;
  let pendingLayer = initial.layer ?? null;
  // A deep-linked run is selected at once: its view's requests go out together with /runs instead of
  // after it (one round trip less on opening the tab). /runs then confirms it, or picks another run.
  if (pendingRun !== null) selectedRun.value = pendingRun;

  // Runs; pick (or keep) the selected run.
  resource(runs, () => [] as [], async (_k, signal) => (await fetchRuns(signal)).runs);
  effect(() => {
    const list = runs.value.data;
    if (!list) return;
    const names = list.map((r) => r.run);
    const current = selectedRun.peek();
    batch(() => {
      if (pendingRun !== null && names.includes(pendingRun)) {
        selectedRun.value = pendingRun;
        pendingRun = null;
      } else if (current === null || !names.includes(current)) {
        selectedRun.value = names.length ? names[0] : null;
      }
    });
  });

  resource(
    layers,
    () => (selectedRun.value === null ? null : [selectedRun.value]),
    ([run], signal) => fetchLayers(run, signal),
  );

  // Keep the selected layer only if the run has it (a deep-linked layer waits for its run's layers).
  effect(() => {
    const info = layers.value.data;
    const run = selectedRun.value;
    if (!info || info.run !== run) return;
    const names = new Set(info.layers.map((l) => l.name));
    if (pendingLayer !== null) {
      selectedLayer.value = names.has(pendingLayer) ? pendingLayer : null;
      pendingLayer = null;
    } else if (selectedLayer.peek() !== null && !names.has(selectedLayer.peek()!)) {
      selectedLayer.value = null;
    }
  });

  // Only while the statistics view shows it (the Model view, the default, does not).
  resource(
    heatmap,
    () => (activeView.value !== STATS_VIEW || selectedRun.value === null ? null : [selectedRun.value, selectedStat.value]),
    async ([run, stat], signal, show) => {
      const first = await fetchHeatmap(run, stat, signal);
      if (!first.sampled) return first;
      // A sample of the steps (a run nothing read yet): drawn at once; the server reads every step
      // meanwhile and the next answer (which waits for that read) has the exact columns.
      show(first);
      return fetchHeatmap(run, stat, signal);
    },
    true,
  );

  // Only ask for a layer's stats once the run's layer list confirms the layer exists. The key is
  // a computed string, so refreshing the layer list on reload does not trigger a second fetch.
  const layerStatsKey = computed(() => {
    const run = selectedRun.value;
    const layer = selectedLayer.value;
    const info = layers.value.data;
    if (run === null || layer === null || !info || info.run !== run) return null;
    return info.layers.some((l) => l.name === layer) ? JSON.stringify([run, layer]) : null;
  });
  resource(
    layerStats,
    () => (layerStatsKey.value === null ? null : (JSON.parse(layerStatsKey.value) as [string, string])),
    ([run, layer], signal) => fetchLayerStats(run, layer, signal),
    true,
  );
}

let reloadTimer: ReturnType<typeof setTimeout> | undefined;
/** Coalesce the host's DataReloaded / RunsChanged bursts into one refetch. */
export function requestReload(): void {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    reloadTick.value++;
  }, 50);
}
