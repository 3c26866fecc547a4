// The deep link: the selection mirrored into the parent page's URL (p.insight.<key>=<value>), and a
// pasted link (or back/forward) applied to the selection. The tab-wide keys are here; each view
// adds its own (ViewDef.url) while it is shown.
import { effect, untracked } from "@preact/signals";
import { activeView, colormap, runs, selectedLayer, selectedRun } from "../core/state";
import { DEFAULT_COLORMAP, isColormapName } from "../lib/colormaps";
import { onUrlStateChange, readUrlState, writeUrlState } from "../lib/urlstate";
import { MODEL_VIEW } from "../views/model/state";
import { isStatName, normalization, selectedStat } from "../views/stats/state";
import { isViewId, VIEWS, viewById } from "./registry";

type UrlState = Record<string, string | null>;

/** Apply a link; the run and layer only after start-up (the loaders take them at start). */
export function applyUrlState(url: Record<string, string>, initial: boolean): void {
  if (url.stat && isStatName(url.stat)) selectedStat.value = url.stat;
  if (url.cmap && isColormapName(url.cmap)) colormap.value = url.cmap;
  if (url.norm === "global" || url.norm === "row") normalization.value = url.norm;
  if (url.view && isViewId(url.view)) activeView.value = url.view;
  if (url.view) viewById(url.view)?.url?.apply(url);
  if (!initial) {
    const names = runs.peek().data?.map((r) => r.run) ?? [];
    if (url.run && names.includes(url.run)) selectedRun.value = url.run;
    if (url.layer !== undefined) selectedLayer.value = url.layer || null;
  }
}

function currentUrlState(): UrlState | null {
  const run = selectedRun.value;
  if (run === null) return null;
  const state: UrlState = {
    run,
    view: activeView.value === MODEL_VIEW ? null : activeView.value,
    stat: selectedStat.value,
    layer: selectedLayer.value,
    cmap: colormap.value === DEFAULT_COLORMAP ? null : colormap.value,
    norm: normalization.value === "row" ? null : normalization.value,
  };
  const viewUrl = viewById(activeView.value)?.url;
  if (viewUrl) Object.assign(state, viewUrl.state());
  return state;
}

const STEP_KEYS = new Set(VIEWS.flatMap((v) => (v.url?.stepKey ? [v.url.stepKey] : [])));

/** Keep the parent URL in step with the selection, and the selection with a changed URL. */
export function syncUrlState(): void {
  // Step changes (slider, play) are throttled: browsers throttle frequent history.replaceState
  // calls. Every other change is written at once.
  let lastWrite = 0;
  let written: UrlState | null = null;
  let writeTimer: ReturnType<typeof setTimeout> | undefined;
  let pendingState: UrlState | null = null;
  const flush = () => {
    clearTimeout(writeTimer);
    writeTimer = undefined;
    lastWrite = performance.now();
    written = pendingState;
    if (pendingState) writeUrlState(pendingState);
  };
  const onlyStepChanged = (a: UrlState, b: UrlState | null) =>
    b !== null && Object.keys(a).every((k) => STEP_KEYS.has(k) || a[k] === b[k]);
  effect(() => {
    pendingState = currentUrlState();
    if (pendingState === null) return;
    if (!onlyStepChanged(pendingState, written)) {
      flush();
      return;
    }
    if (writeTimer !== undefined) return;
    const wait = 300 - (performance.now() - lastWrite);
    if (wait <= 0) flush();
    else writeTimer = setTimeout(flush, wait);
  });
  // A pasted link (or back/forward) changes the selection; TensorBoard rewriting the hash
  // without our keys (e.g. returning from another tab) gets them written back.
  onUrlStateChange(() => {
    const next = readUrlState();
    if (Object.keys(next).length) applyUrlState(next, false);
    else
      untracked(() => {
        pendingState = currentUrlState();
        flush();
      });
  });
}
