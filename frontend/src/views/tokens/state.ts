// The text-probe view's state: the run's text probes, the chosen probe, step and overlay, and the
// loaded step (sequences, predictions, overlays).
import { computed, signal } from "@preact/signals";
import { resource } from "../../core/resource";
import { activeView, idle, selectedRun, type Loadable } from "../../core/state";
import { fetchTokenProbes, fetchTokens, type TokenProbesResponse, type TokensResponse } from "./api";

export const TOKENS_VIEW = "tokens";

export const tokenProbes = signal<Loadable<TokenProbesResponse>>(idle());
export const tokensAt = signal<Loadable<TokensResponse>>(idle());
/** The chosen probe (null: the first), step (null: the latest) and overlay id (null: the first). */
export const tokenProbe = signal<string | null>(null);
export const tokenStep = signal<number | null>(null);
export const tokenOverlay = signal<string | null>(null);

export const probeInfo = computed(() => {
  const probes = tokenProbes.value.data?.probes ?? [];
  return probes.find((p) => p.probe === tokenProbe.value) ?? probes[0] ?? null;
});

export const probeSteps = computed(() => probeInfo.value?.steps ?? []);

/** The step shown: the chosen one if recorded, else the latest. */
export const shownStep = computed(() => {
  const steps = probeSteps.value;
  if (!steps.length) return null;
  const s = tokenStep.value;
  return s !== null && steps.includes(s) ? s : steps[steps.length - 1];
});

export function startTokenLoaders(): void {
  resource(
    tokenProbes,
    () => (activeView.value === TOKENS_VIEW && selectedRun.value ? [selectedRun.value] : null),
    ([run], sig) => fetchTokenProbes(run, sig),
  );
  resource(
    tokensAt,
    () => {
      const run = selectedRun.value;
      const info = probeInfo.value;
      const step = shownStep.value;
      if (activeView.value !== TOKENS_VIEW || !run || !info || step === null) return null;
      return [run, info.probe, step] as [string, string, number];
    },
    ([run, probe, step], sig) => fetchTokens(run, probe, step, sig),
    true,
  );
}
