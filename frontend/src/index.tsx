// Entry point. TensorBoard imports this module inside the plugin iframe and calls render() once.
import { effect, untracked } from "@preact/signals";
import { render as mount } from "preact";
import uplotCss from "uplot/dist/uPlot.min.css";
import appCss from "./styles.css";
import { isColormapName } from "./colormaps";
import { requestReload, startLoaders } from "./data";
import { connectToHost } from "./ipc";
import {
  activeView,
  colormap,
  darkMode,
  isStatName,
  normalization,
  runs,
  selectedLayer,
  selectedRun,
  selectedStat,
} from "./state";
import { adoptParentFonts, watchDarkMode } from "./theme";
import { onUrlStateChange, readUrlState, writeUrlState } from "./urlstate";
import { App } from "./views/App";
import { ErrorBoundary } from "./views/common";
import { DEFAULT_COLORMAP } from "./colormaps";
import { startCamLoaders } from "./cam_data";
import { startModelLoaders } from "./model_state";
import {
  camColormap,
  camKind,
  camLayer,
  camMethods,
  camNorm,
  camOpacity,
  camProbe,
  camStep,
  camThreshold,
  camTileSize,
  compareRun,
  currentStep,
  DEFAULT_CAM_COLORMAP,
  DEFAULT_OPACITY,
  DEFAULT_THRESHOLD,
  DEFAULT_TILE_SIZE,
  MAX_TILE_SIZE,
  MIN_TILE_SIZE,
  selectedImage,
} from "./cam_state";
import { DEFAULT_PROBE } from "./api";
import { isViewId } from "./views/registry";
import {
  alertMeasure,
  DEFAULT_EXPLODE_EXP,
  DEFAULT_HEATMAP_FIELD,
  DEFAULT_VANISH_EXP,
  explodeExp,
  GRAD_VIEW,
  gradField,
  gradStep,
  isHeatmapField,
  isMeasure,
  shownGradStep,
  startGradLoaders,
  vanishExp,
} from "./grad_state";

let started = false;

function num(s: string | undefined, lo: number, hi: number): number | null {
  if (s === undefined || s === "") return null;
  const v = Number(s);
  return Number.isFinite(v) && v >= lo && v <= hi ? v : null;
}

/** The overlay viewer's part of a deep link (keys `cam.*`). */
function applyCamUrlState(url: Record<string, string>): void {
  if (url["cam.kind"] === "cam" || url["cam.kind"] === "saliency") camKind.value = url["cam.kind"];
  if (url["cam.probe"]) camProbe.value = url["cam.probe"];
  if (url["cam.layer"] !== undefined) camLayer.value = url["cam.layer"];
  if (url["cam.methods"]) camMethods.value = url["cam.methods"].split(",").filter(Boolean);
  const step = num(url["cam.step"], 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) camStep.value = Math.floor(step);
  const image = num(url["cam.image"], 0, 1e6);
  selectedImage.value = image === null ? null : Math.floor(image);
  if (url["cam.cmap"] && isColormapName(url["cam.cmap"])) camColormap.value = url["cam.cmap"];
  const opacity = num(url["cam.opacity"], 0, 1);
  if (opacity !== null) camOpacity.value = opacity;
  const threshold = num(url["cam.threshold"], 0, 1);
  if (threshold !== null) camThreshold.value = threshold;
  if (url["cam.norm"] === "shared" || url["cam.norm"] === "image") camNorm.value = url["cam.norm"];
  const size = num(url["cam.size"], MIN_TILE_SIZE, MAX_TILE_SIZE);
  if (size !== null) camTileSize.value = size;
  if (url["cam.compare"] !== undefined) compareRun.value = url["cam.compare"] || null;
}

/** The gradient view's part of a deep link (keys `grad.*`). */
function applyGradUrlState(url: Record<string, string>): void {
  const step = num(url["grad.step"], 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) gradStep.value = Math.floor(step);
  if (url["grad.field"] && isHeatmapField(url["grad.field"])) gradField.value = url["grad.field"];
  if (url["grad.measure"] && isMeasure(url["grad.measure"])) alertMeasure.value = url["grad.measure"];
  const vanish = num(url["grad.vanish"], -8, -1);
  if (vanish !== null) vanishExp.value = Math.round(vanish);
  const explode = num(url["grad.explode"], 1, 8);
  if (explode !== null) explodeExp.value = Math.round(explode);
}

function applyUrlState(url: Record<string, string>, initial: boolean): void {
  if (url.stat && isStatName(url.stat)) selectedStat.value = url.stat;
  if (url.cmap && isColormapName(url.cmap)) colormap.value = url.cmap;
  if (url.norm === "global" || url.norm === "row") normalization.value = url.norm;
  if (url.view && isViewId(url.view)) activeView.value = url.view;
  if (url.view === "cam") applyCamUrlState(url);
  if (url.view === GRAD_VIEW) applyGradUrlState(url);
  if (!initial) {
    const names = runs.peek().data?.map((r) => r.run) ?? [];
    if (url.run && names.includes(url.run)) selectedRun.value = url.run;
    if (url.layer !== undefined) selectedLayer.value = url.layer || null;
  }
}

export function render(): void {
  if (started) return;
  started = true;

  const style = document.createElement("style");
  style.dataset.insight = "styles";
  style.textContent = uplotCss + "\n" + appCss;
  document.head.appendChild(style);
  adoptParentFonts();
  watchDarkMode((dark) => {
    darkMode.value = dark;
    document.documentElement.classList.toggle("dark", dark);
  });

  const url = readUrlState();
  applyUrlState(url, true);
  startLoaders({ run: url.run, layer: url.layer });
  startCamLoaders();
  startGradLoaders();
  startModelLoaders();

  // Deep link: mirror the selection into the parent URL (p.insight.<key>=<value>).
  const urlState = (): Record<string, string | null> | null => {
    const run = selectedRun.value;
    if (run === null) return null;
    const state: Record<string, string | null> = {
      run,
      view: activeView.value === "model" ? null : activeView.value,
      stat: selectedStat.value,
      layer: selectedLayer.value,
      cmap: colormap.value === DEFAULT_COLORMAP ? null : colormap.value,
      norm: normalization.value === "row" ? null : normalization.value,
    };
    if (activeView.value === "cam") {
      const step = currentStep.value;
      Object.assign(state, {
        "cam.kind": camKind.value === "cam" ? null : camKind.value,
        "cam.probe": camProbe.value === DEFAULT_PROBE ? null : camProbe.value,
        "cam.layer": camKind.value === "cam" ? camLayer.value : null,
        "cam.methods": camMethods.value.join(","),
        "cam.step": step === null ? null : String(step),
        "cam.image": selectedImage.value === null ? null : String(selectedImage.value),
        "cam.cmap": camColormap.value === DEFAULT_CAM_COLORMAP ? null : camColormap.value,
        "cam.opacity": camOpacity.value === DEFAULT_OPACITY ? null : String(camOpacity.value),
        "cam.threshold": camThreshold.value === DEFAULT_THRESHOLD ? null : String(camThreshold.value),
        "cam.norm": camNorm.value === "image" ? null : camNorm.value,
        "cam.size": camTileSize.value === DEFAULT_TILE_SIZE ? null : String(camTileSize.value),
        "cam.compare": compareRun.value,
      });
    }
    if (activeView.value === GRAD_VIEW) {
      const step = shownGradStep.value;
      Object.assign(state, {
        "grad.step": step === null ? null : String(step),
        "grad.field": gradField.value === DEFAULT_HEATMAP_FIELD ? null : gradField.value,
        "grad.measure": alertMeasure.value === "gradNorm" ? null : alertMeasure.value,
        "grad.vanish": vanishExp.value === DEFAULT_VANISH_EXP ? null : String(vanishExp.value),
        "grad.explode": explodeExp.value === DEFAULT_EXPLODE_EXP ? null : String(explodeExp.value),
      });
    }
    return state;
  };
  // Step changes (slider, play) are throttled: browsers throttle frequent history.replaceState
  // calls. Every other change is written at once.
  let lastWrite = 0;
  let written: Record<string, string | null> | null = null;
  let writeTimer: ReturnType<typeof setTimeout> | undefined;
  let pendingState: Record<string, string | null> | null = null;
  const flush = () => {
    clearTimeout(writeTimer);
    writeTimer = undefined;
    lastWrite = performance.now();
    written = pendingState;
    if (pendingState) writeUrlState(pendingState);
  };
  const onlyStepChanged = (a: Record<string, string | null>, b: Record<string, string | null> | null) =>
    b !== null && Object.keys(a).every((k) => k === "cam.step" || k === "grad.step" || a[k] === b[k]);
  const syncUrl = () => {
    pendingState = urlState();
    if (pendingState === null) return;
    if (!onlyStepChanged(pendingState, written)) {
      flush();
      return;
    }
    if (writeTimer !== undefined) return;
    const wait = 300 - (performance.now() - lastWrite);
    if (wait <= 0) flush();
    else writeTimer = setTimeout(flush, wait);
  };
  effect(syncUrl);
  // A pasted link (or back/forward) changes the selection; TensorBoard rewriting the hash
  // without our keys (e.g. returning from another tab) gets them written back.
  onUrlStateChange(() => {
    const next = readUrlState();
    if (Object.keys(next).length) applyUrlState(next, false);
    else
      untracked(() => {
        pendingState = urlState();
        flush();
      });
  });

  // Follow TensorBoard's reload button / auto-reload.
  const ipc = connectToHost();
  if (ipc) {
    ipc.listen("experimental.DataReloaded", () => requestReload());
    let lastRuns: string | null = null;
    ipc.listen("experimental.RunsChanged", (payload) => {
      const key = JSON.stringify(payload);
      if (lastRuns !== null && key !== lastRuns) requestReload();
      lastRuns = key;
    });
  }

  const root = document.createElement("div");
  root.id = "insight-root";
  document.body.appendChild(root);
  mount(
    <ErrorBoundary>
      <App />
    </ErrorBoundary>,
    root,
  );
}
