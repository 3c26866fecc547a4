// The controls of grouped layer rows (lib/layer_groups): a filter box (name or module type), the
// depth to unfold to (like the Model view's table), and unfold/fold all. One per view.
import type { Signal } from "@preact/signals";
import { UNFOLDED, type FoldState } from "../lib/layer_groups";

export function GroupTools(props: {
  fold: Signal<FoldState>;
  /** The deepest group depth (0: no groups, only the filter shows). */
  maxDepth: number;
  /** The depth in effect (the default when fold.depth is null). */
  depth: number;
  /** Rows shown and layers in all, for the summary. */
  shown: number;
  layers: number;
  /** How folded rows combine their layers' values (a tooltip). */
  note?: string;
  /** data-testid prefix, e.g. "stats" → stats-group-filter. */
  testid: string;
}) {
  const { fold, maxDepth, depth, testid } = props;
  const set = (next: Partial<FoldState>) => {
    fold.value = { ...fold.value, ...next };
  };
  const depths = Array.from({ length: maxDepth }, (_, i) => i + 1);
  return (
    <div class="ins-group-tools" data-testid={`${testid}-group-tools`}>
      <input
        type="search"
        class="ins-input"
        placeholder="Filter layers by name or type"
        aria-label="Filter layers by name or type"
        data-testid={`${testid}-group-filter`}
        value={fold.value.filter}
        onInput={(e) => set({ filter: (e.currentTarget as HTMLInputElement).value })}
      />
      {maxDepth > 0 ? (
        <>
          <label title="Groups of layers by module (and ranges of many siblings); a folded group is one row">
            Unfold to depth{" "}
            <select
              class="ins-select"
              data-testid={`${testid}-group-depth`}
              value={depth >= UNFOLDED ? "all" : String(depth)}
              onChange={(e) => {
                const v = (e.currentTarget as HTMLSelectElement).value;
                set({ depth: v === "all" ? UNFOLDED : Number(v), open: new Map() });
              }}
            >
              {depths.map((d) => (
                <option key={d} value={String(d)}>
                  {d}
                </option>
              ))}
              <option value="all">all</option>
            </select>
          </label>
          <button type="button" class="ins-btn" data-testid={`${testid}-group-fold-all`} onClick={() => set({ depth: 1, open: new Map() })}>
            Fold all
          </button>
          <button type="button" class="ins-btn" data-testid={`${testid}-group-unfold-all`} onClick={() => set({ depth: UNFOLDED, open: new Map() })}>
            Unfold all
          </button>
        </>
      ) : null}
      <span class="ins-muted" data-testid={`${testid}-group-summary`} title={props.note}>
        {props.shown} rows · {props.layers} layers{props.note ? " · folded rows: " + props.note : ""}
      </span>
    </div>
  );
}
