// Tab-wide loaders: the run list (and the selected run), the selected run's layers (and the selected
// layer), and TensorBoard's reload. Each view starts its own loaders (ViewDef.start, app/registry.ts).
import { batch, effect } from "@preact/signals";
import { fetchLayers, fetchRuns } from "./api";
import { resource } from "./resource";
import { layers, reloadTick, runs, selectedLayer, selectedRun } from "./state";

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
}

let reloadTimer: ReturnType<typeof setTimeout> | undefined;
/** Coalesce the host's DataReloaded / RunsChanged bursts into one refetch. */
export function requestReload(): void {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => {
    reloadTick.value++;
  }, 50);
}
