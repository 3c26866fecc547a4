// Entry point. TensorBoard imports this module inside the plugin iframe and calls render() once.
import { effect, untracked } from "@preact/signals";
import { render as mount } from "preact";
import uplotCss from "uplot/dist/uPlot.min.css";
import appCss from "./styles.css";
import { isColormapName } from "./colormaps";
import { requestReload, startLoaders } from "./data";
import { connectToHost } from "./ipc";
import {
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

let started = false;

function applyUrlState(url: Record<string, string>, initial: boolean): void {
  if (url.stat && isStatName(url.stat)) selectedStat.value = url.stat;
  if (url.cmap && isColormapName(url.cmap)) colormap.value = url.cmap;
  if (url.norm === "global" || url.norm === "row") normalization.value = url.norm;
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

  // Deep link: mirror the selection into the parent URL (p.insight.<key>=<value>).
  const syncUrl = () => {
    const run = selectedRun.value;
    if (run === null) return;
    writeUrlState({
      run,
      stat: selectedStat.value,
      layer: selectedLayer.value,
      cmap: colormap.value === DEFAULT_COLORMAP ? null : colormap.value,
      norm: normalization.value === "row" ? null : normalization.value,
    });
  };
  effect(syncUrl);
  // A pasted link (or back/forward) changes the selection; TensorBoard rewriting the hash
  // without our keys (e.g. returning from another tab) gets them written back.
  onUrlStateChange(() => {
    const next = readUrlState();
    if (Object.keys(next).length) applyUrlState(next, false);
    else untracked(syncUrl);
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
