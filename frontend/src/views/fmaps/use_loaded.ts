// A promise-backed value for the feature-map components (whose data comes from the caches in state.ts).
import { useEffect, useState } from "preact/hooks";
import { describe } from "../../core/resource";

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** Resolve `load()` whenever `key` changes; the previous data stays until the new data arrives. */
export function useLoaded<T>(key: string | null, load: () => Promise<T>): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: false });
  useEffect(() => {
    if (key === null) {
      setState({ data: null, error: null, loading: false });
      return;
    }
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (e: unknown) => live && setState((s) => ({ data: s.data, error: describe(e), loading: false })),
    );
    return () => {
      live = false;
    };
  }, [key]);
  return state;
}
