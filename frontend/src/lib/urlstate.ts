// Deep links: run/stat/layer live in the parent page's hash as `p.insight.<key>=<value>`, next to
// TensorBoard's own `#insight` tab part, in the format of TensorBoard's tf_storage
// (`tab&key=value&...`, keys and values encodeURIComponent'ed). Those keys are also what the
// host's experimental.GetURLPluginData returns for this plugin.

const PREFIX = "p.insight.";

function hostWindow(): Window | null {
  try {
    if (window.parent === window) return null;
    void window.parent.location.hash; // throws if cross-origin
    return window.parent;
  } catch {
    return null;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function readUrlState(): Record<string, string> {
  const host = hostWindow();
  if (!host) return {};
  const out: Record<string, string> = {};
  for (const token of host.location.hash.replace(/^#/, "").split("&")) {
    const kv = token.split("=");
    if (kv.length !== 2) continue;
    const key = safeDecode(kv[0]);
    if (key.startsWith(PREFIX)) out[key.slice(PREFIX.length)] = safeDecode(kv[1]);
  }
  return out;
}

export function writeUrlState(state: Record<string, string | null | undefined>): void {
  const host = hostWindow();
  if (!host) return;
  const hash = host.location.hash.replace(/^#/, "");
  // Another dashboard is showing (e.g. after switching to #scalars): leave its URL alone.
  const tab = hash.split("&").find((token) => token && !token.includes("="));
  if (tab !== undefined && safeDecode(tab) !== "insight") return;
  const kept = hash.split("&").filter((token) => {
    if (!token) return false;
    const kv = token.split("=");
    return !(kv.length === 2 && safeDecode(kv[0]).startsWith(PREFIX));
  });
  for (const [key, value] of Object.entries(state)) {
    if (value !== null && value !== undefined && value !== "") {
      kept.push(encodeURIComponent(PREFIX + key) + "=" + encodeURIComponent(value));
    }
  }
  const next = kept.join("&");
  if (next === hash) return;
  try {
    const url = new URL(host.location.href);
    url.hash = next;
    // replaceState: no history entry per click, and no hashchange for TensorBoard's router.
    host.history.replaceState(host.history.state, "", url.toString());
  } catch {
    // Ignore: deep links are a convenience.
  }
}

export function onUrlStateChange(callback: () => void): void {
  hostWindow()?.addEventListener("hashchange", callback);
}

/** A number of a deep link within [lo, hi], else null (absent, not a number, or out of range). */
export function numberParam(s: string | undefined, lo: number, hi: number): number | null {
  if (s === undefined || s === "") return null;
  const v = Number(s);
  return Number.isFinite(v) && v >= lo && v <= hi ? v : null;
}

/** A view's part of the deep link (keys `<view>.*`), applied and written while the view is shown. */
export interface ViewUrlState {
  /** Apply the view's keys of a link whose view is this one. */
  apply(url: Record<string, string>): void;
  /** The view's keys to write while it is shown (null: left out of the link). */
  state(): Record<string, string | null>;
  /** The key that changes at every frame while scrubbing or playing: written throttled. */
  stepKey?: string;
}
