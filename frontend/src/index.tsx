// Entry point. TensorBoard imports this module inside the plugin iframe and calls render() once.
import { render as mount } from "preact";
import uplotCss from "uplot/dist/uPlot.min.css";
import { App } from "./app/App";
import { applyUrlState, syncUrlState } from "./app/deeplink";
import { VIEWS } from "./app/registry";
import { requestReload, startLoaders } from "./core/loaders";
import { darkMode } from "./core/state";
import { connectToHost } from "./lib/ipc";
import { adoptParentFonts, watchDarkMode } from "./lib/theme";
import { readUrlState } from "./lib/urlstate";
import appCss from "./styles.css";
import { ErrorBoundary } from "./widgets/ErrorMessage";

let started = false;

/** Follow TensorBoard's reload button / auto-reload. */
function followHostReloads(): void {
  const ipc = connectToHost();
  if (!ipc) return;
  ipc.listen("experimental.DataReloaded", () => requestReload());
  let lastRuns: string | null = null;
  ipc.listen("experimental.RunsChanged", (payload) => {
    const key = JSON.stringify(payload);
    if (lastRuns !== null && key !== lastRuns) requestReload();
    lastRuns = key;
  });
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
  for (const view of VIEWS) view.start?.();
  syncUrlState();
  followHostReloads();

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
