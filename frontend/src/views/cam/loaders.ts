// Loaders of the overlay viewer: the selected run's map series, probe and predictions (and the
// comparison run's), fetched only while the CAM view is shown; plus the selection fix-ups once a
// run's series are known (a deep-linked layer/method is kept when the run has it).
import { batch, computed, effect } from "@preact/signals";
import { fetchProbe } from "../../core/api";
import { resource } from "../../core/resource";
import { activeView, runs, selectedRun } from "../../core/state";
import { fetchMaps, fetchPredictions, type MapsResponse } from "./api";
import {
  availableKinds,
  availableLayers,
  availableMethods,
  availableProbes,
  camKind,
  camLayer,
  camMethods,
  camProbe,
  compareRun,
  frameModel,
  mapsA,
  mapsB,
  predsA,
  predsB,
  probeA,
  probeB,
  CAM_VIEW,
  probeOf,
  runSeries,
  selectedImage,
} from "./state";

const PREFERRED_METHODS = ["gradcam", "gradient"];

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

let started = false;

export function startCamLoaders(): void {
  if (started) return;
  started = true;
  const onView = () => activeView.value === CAM_VIEW;

  resource(
    mapsA,
    () => (onView() && selectedRun.value !== null ? [selectedRun.value] : null),
    ([run], signal) => fetchMaps(run, signal),
    true,
  );
  // The probe and predictions only once the run's series show that the probe exists (a 404 for a
  // run without one would be logged as a console error by the browser). The keys are computed
  // strings, so the maps' loading/loaded transitions on a reload do not refetch them twice.
  const probeKey = (run: string | null, maps: MapsResponse | null): string | null => {
    if (!onView() || run === null || !maps || maps.run !== run) return null;
    const probe = camProbe.value;
    return maps.series.some((s) => probeOf(s) === probe) ? JSON.stringify([run, probe]) : null;
  };
  const parse = (k: string | null) => (k === null ? null : (JSON.parse(k) as [string, string]));
  const probeKeyA = computed(() => probeKey(selectedRun.value, mapsA.value.data));
  resource(
    probeA,
    () => parse(probeKeyA.value),
    ([run, probe], signal) => fetchProbe(run, probe, signal),
    true,
  );
  resource(
    predsA,
    () => parse(probeKeyA.value),
    ([run, probe], signal) => fetchPredictions(run, probe, signal),
    true,
  );

  const other = () => {
    const b = compareRun.value;
    return onView() && b !== null && b !== selectedRun.value ? b : null;
  };
  resource(
    mapsB,
    () => (other() !== null ? [other()!] : null),
    ([run], signal) => fetchMaps(run, signal),
  );
  const probeKeyB = computed(() => probeKey(other(), mapsB.value.data));
  resource(
    probeB,
    () => parse(probeKeyB.value),
    ([run, probe], signal) => fetchProbe(run, probe, signal),
  );
  resource(
    predsB,
    () => parse(probeKeyB.value),
    ([run, probe], signal) => fetchPredictions(run, probe, signal),
  );

  // Once the run's series are known, keep the selection if the run has it, else pick defaults:
  // the default probe, CAMs before saliency, the automatically chosen layer, Grad-CAM.
  effect(() => {
    const maps = mapsA.value.data;
    if (!maps || maps.run !== selectedRun.value) return;
    void runSeries.value;
    batch(() => {
      const probes = availableProbes.value;
      if (probes.length && !probes.includes(camProbe.peek())) camProbe.value = probes[0];
      const kinds = availableKinds.value;
      if (kinds.length && !kinds.includes(camKind.peek())) camKind.value = kinds[0];
      const layers = availableLayers.value;
      // null: nothing chosen yet (not the whole-model layer "", which rollout and FullGrad use)
      const current = camLayer.peek();
      if (layers.length && (current === null || !layers.some((l) => l.name === current))) {
        camLayer.value = (layers.find((l) => l.auto) ?? layers[0]).name;
      }
      const methods = availableMethods.value;
      if (methods.length) {
        const kept = camMethods.peek().filter((m) => methods.includes(m));
        const next = kept.length ? kept : [PREFERRED_METHODS.find((m) => methods.includes(m)) ?? methods[0]];
        if (!sameList(next, camMethods.peek())) camMethods.value = next;
      }
    });
  });

  // The comparison run must be another existing run.
  effect(() => {
    const list = runs.value.data;
    const b = compareRun.value;
    if (!list || b === null) return;
    if (b === selectedRun.value || !list.some((r) => r.run === b)) compareRun.value = null;
  });

  // The enlarged image must exist.
  effect(() => {
    const model = frameModel.value;
    const i = selectedImage.value;
    if (model && model.slots[0].probe && i !== null && (i < 0 || i >= model.numImages)) selectedImage.value = null;
  });

}
