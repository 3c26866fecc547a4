// One loader per resource: an effect that fetches whenever its key (the selection, TensorBoard's reload
// tick) changes. A response is dropped when the selection changed meanwhile or a newer request was
// issued, and on reloads the previous data stays on screen until the new data arrives.
import { effect } from "@preact/signals";
import { ApiError } from "./api";
import { reloadTick, type Loadable } from "./state";

export function describe(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.message} (HTTP ${e.status})` : e.message;
  return e instanceof Error ? e.message : String(e);
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === "AbortError";
}

/**
 * A loader for the routes whose first answer on a run the server has not read yet is a sample of its
 * steps (`sampled: true`, drawn at once): it then asks again, and that answer, which the server gives
 * once it has read every step, replaces the sample.
 */
export function sampledThenExact<K extends unknown[], T extends { sampled?: boolean }>(
  fetch: (k: K, signal: AbortSignal) => Promise<T>,
): (k: K, signal: AbortSignal, show: (partial: T) => void) => Promise<T> {
  return async (k, signal, show) => {
    const first = await fetch(k, signal);
    if (!first.sampled) return first;
    show(first);
    return fetch(k, signal);
  };
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
