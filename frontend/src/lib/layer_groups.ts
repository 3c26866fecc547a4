// Grouping of layer rows by module prefix (pure, no DOM): heatmaps, alert lists and the gradient-flow
// chart of a model with hundreds of watched layers fold `blocks.7.*` into one row, by depth like the
// Model view's table, and filter by name or module type. A level with many siblings (a flat
// nn.Sequential of 300 layers has no dotted prefix) is cut into consecutive ranges ("0 … 19").

/** A group of layers: a module prefix, or a range of consecutive siblings. */
export interface GroupNode {
  /** Unique key (fold overrides are keyed by it): "blocks.7.*", or "[0 … 19]" under its parent's prefix. */
  key: string;
  /** Shown text. */
  label: string;
  /** 1 = a top-level group; a range adds one level. */
  depth: number;
  /** Index of the layer named exactly like the prefix (a watched container), or -1. */
  own: number;
  /** Child groups and leaf layers, in model order. */
  children: TreeItem[];
  /** Every layer index under this group (its own first), in model order. */
  members: number[];
}

export type TreeItem = { kind: "layer"; layer: number; depth: number } | { kind: "group"; node: GroupNode };

/** Siblings above this are cut into ranges. */
export const MAX_SIBLINGS = 24;
/** Rows shown at most before folding by default. */
export const DEFAULT_ROW_LIMIT = 60;
const RANGE_SIZES = [5, 10, 20, 25, 50, 100, 200, 250, 500, 1000];

interface Draft {
  prefix: string;
  own: number;
  children: Map<string, Draft>;
  order: number;
}

/** The group tree of `names` (model order); the returned root (depth 0) is not shown itself. */
export function buildLayerTree(names: readonly string[]): GroupNode {
  const root: Draft = { prefix: "", own: -1, children: new Map(), order: 0 };
  names.forEach((name, i) => {
    const parts = name.split(".");
    let node = root;
    for (let k = 0; k < parts.length; k++) {
      const prefix = parts.slice(0, k + 1).join(".");
      let child = node.children.get(prefix);
      if (!child) {
        child = { prefix, own: -1, children: new Map(), order: i };
        node.children.set(prefix, child);
      }
      node = child;
    }
    if (node.own < 0) node.own = i;
  });
  return finish(root, "", 0);
}

function toItem(d: Draft, depth: number): TreeItem {
  if (d.children.size === 0 && d.own >= 0) return { kind: "layer", layer: d.own, depth };
  return { kind: "group", node: finish(d, d.prefix + ".*", depth) };
}

function finish(d: Draft, key: string, depth: number): GroupNode {
  const drafts = [...d.children.values()].sort((a, b) => a.order - b.order);
  let children: TreeItem[];
  if (drafts.length > MAX_SIBLINGS) {
    const size = RANGE_SIZES.find((s) => s * 16 >= drafts.length) ?? Math.ceil(drafts.length / 16);
    children = [];
    for (let s = 0; s < drafts.length; s += size) {
      const part = drafts.slice(s, s + size);
      const first = lastPart(part[0].prefix);
      const last = lastPart(part[part.length - 1].prefix);
      const label = (d.prefix ? d.prefix + "." : "") + (part.length > 1 ? `${first} … ${last}` : first);
      const range: GroupNode = {
        key: (d.prefix ? d.prefix + "." : "") + `[${first} … ${last}]`,
        label,
        depth: depth + 1,
        own: -1,
        children: part.map((c) => toItem(c, depth + 2)),
        members: [],
      };
      range.members = collectMembers(range);
      children.push({ kind: "group", node: range });
    }
  } else {
    children = drafts.map((c) => toItem(c, depth + 1));
  }
  const node: GroupNode = { key, label: key, depth, own: d.own, children, members: [] };
  node.members = collectMembers(node);
  return node;
}

function lastPart(prefix: string): string {
  const dot = prefix.lastIndexOf(".");
  return dot < 0 ? prefix : prefix.slice(dot + 1);
}

function collectMembers(node: GroupNode): number[] {
  const out: number[] = node.own >= 0 ? [node.own] : [];
  for (const c of node.children) {
    if (c.kind === "layer") out.push(c.layer);
    else out.push(...c.node.members);
  }
  return out;
}

/** How rows fold: a depth (null: the default for the row count), per-group overrides, a filter. */
export interface FoldState {
  /** Groups shallower than this are unfolded; null = the deepest depth that keeps ≤ DEFAULT_ROW_LIMIT rows. */
  depth: number | null;
  /** Per-group overrides of the depth rule (true = unfolded). */
  open: ReadonlyMap<string, boolean>;
  /** Case-insensitive text matched against each layer's name and module type. */
  filter: string;
}

export const UNFOLDED = Number.MAX_SAFE_INTEGER;

export function initialFold(): FoldState {
  return { depth: null, open: new Map(), filter: "" };
}

/** A row to show: a layer, or a group (folded: one aggregated row; unfolded: a header over its rows). */
export type Entry =
  | { kind: "layer"; layer: number; depth: number }
  | { kind: "group"; node: GroupNode; open: boolean; depth: number; members: number[] };

export interface EntryOptions {
  /** Only these layers (e.g. those with data, or matching the filter); groups without any are left out. */
  keep?: (layer: number) => boolean;
  /** Unfolded groups as header rows (heatmaps, alert lists); false: only their contents (the flow chart's bars). */
  headers?: boolean;
}

function walk(
  node: GroupNode,
  depth: number,
  open: ReadonlyMap<string, boolean>,
  keep: (layer: number) => boolean,
  headers: boolean,
  out: Entry[],
): void {
  for (const item of ownFirst(node)) {
    if (item.kind === "layer") {
      if (keep(item.layer)) out.push(item);
      continue;
    }
    const g = item.node;
    const members = g.members.filter(keep);
    if (members.length === 0) continue;
    if (members.length === 1) {
      out.push({ kind: "layer", layer: members[0], depth: g.depth });
      continue;
    }
    const unfolded = open.get(g.key) ?? g.depth < depth;
    if (!unfolded || headers) out.push({ kind: "group", node: g, open: unfolded, depth: g.depth, members });
    if (unfolded) walk(g, depth, open, keep, headers, out);
  }
}

function ownFirst(node: GroupNode): TreeItem[] {
  return node.own >= 0 && node.depth > 0
    ? [{ kind: "layer", layer: node.own, depth: node.depth + 1 }, ...node.children]
    : node.children;
}

/** Whether a layer passes the filter (its name or module type contains the text, case-insensitively). */
export function matchesFilter(filter: string, name: string, type: string | undefined): boolean {
  const needle = filter.trim().toLowerCase();
  return !needle || name.toLowerCase().includes(needle) || (type ?? "").toLowerCase().includes(needle);
}

/** The deepest group depth of the tree. */
export function treeDepth(root: GroupNode): number {
  let d = 0;
  const visit = (n: GroupNode) => {
    d = Math.max(d, n.depth);
    for (const c of n.children) if (c.kind === "group") visit(c.node);
  };
  visit(root);
  return d;
}

/** The depth a FoldState with depth null means: everything unfolded when that shows ≤ limit rows, else
 * the deepest depth that does (at least 1). */
export function autoDepth(root: GroupNode, keep: (layer: number) => boolean = () => true, limit = DEFAULT_ROW_LIMIT): number {
  const none = new Map<string, boolean>();
  const count = (depth: number) => {
    const out: Entry[] = [];
    walk(root, depth, none, keep, true, out);
    return out.length;
  };
  const max = treeDepth(root);
  if (count(UNFOLDED) <= limit) return UNFOLDED;
  let best = 1;
  for (let d = 2; d <= max; d++) if (count(d) <= limit) best = d;
  return best;
}

/** The rows to show under `fold`. */
export function visibleEntries(root: GroupNode, fold: FoldState, options: EntryOptions = {}, depth?: number): Entry[] {
  const keep = options.keep ?? (() => true);
  const d = depth ?? fold.depth ?? autoDepth(root, keep);
  const out: Entry[] = [];
  walk(root, d, fold.open, keep, options.headers ?? true, out);
  return out;
}

/** How a folded group combines its members' values at each step. */
export type Aggregate = "max" | "mean" | "min";

export const AGGREGATE_TEXT: Record<Aggregate, string> = {
  max: "the largest value of its layers",
  mean: "the mean of its layers",
  min: "the smallest value of its layers",
};

/** One row of a folded group: per column, the max/mean/min of its members' values that are not null. */
export function aggregateRow(rows: readonly (readonly (number | null)[] | undefined)[], members: readonly number[], cols: number, agg: Aggregate): (number | null)[] {
  const out: (number | null)[] = new Array(cols).fill(null);
  for (let j = 0; j < cols; j++) {
    let n = 0;
    let acc = agg === "max" ? -Infinity : agg === "min" ? Infinity : 0;
    for (const i of members) {
      const v = rows[i]?.[j];
      if (typeof v !== "number" || !Number.isFinite(v)) continue;
      n++;
      if (agg === "max") acc = v > acc ? v : acc;
      else if (agg === "min") acc = v < acc ? v : acc;
      else acc += v;
    }
    if (n) out[j] = agg === "mean" ? acc / n : acc;
  }
  return out;
}

/** A fold state with one group toggled. */
export function toggleGroup(fold: FoldState, key: string, open: boolean): FoldState {
  const next = new Map(fold.open);
  next.set(key, open);
  return { ...fold, open: next };
}

/** The entry (index) that shows `layer`: its own row, or the folded group holding it; -1 if none. */
export function entryOf(entries: readonly Entry[], layer: number): number {
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    if (e.kind === "layer" ? e.layer === layer : !e.open && e.members.includes(layer)) return k;
  }
  return -1;
}

/** What a heatmap row shows: a layer, or a group (folded: aggregated; unfolded: a header row). */
export interface RowMeta {
  kind: "layer" | "group";
  /** The layer's name, or the group's key. */
  key: string;
  label: string;
  depth: number;
  open: boolean;
  /** Layers in the group (1 for a layer). */
  count: number;
}

/** A layer × step matrix in rows to show: each entry's row (a group's aggregated over its members). */
export function groupedMatrix(
  names: readonly string[],
  values: readonly (readonly (number | null)[] | undefined)[],
  cols: number,
  entries: readonly Entry[],
  agg: Aggregate,
): { layers: string[]; values: (number | null)[][]; meta: RowMeta[] } {
  const layers: string[] = [];
  const rows: (number | null)[][] = [];
  const meta: RowMeta[] = [];
  for (const e of entries) {
    if (e.kind === "layer") {
      layers.push(names[e.layer]);
      rows.push([...(values[e.layer] ?? new Array(cols).fill(null))]);
      meta.push({ kind: "layer", key: names[e.layer], label: names[e.layer], depth: e.depth, open: false, count: 1 });
    } else {
      layers.push(e.node.key);
      rows.push(aggregateRow(values, e.members, cols, agg));
      meta.push({ kind: "group", key: e.node.key, label: e.node.label, depth: e.depth, open: e.open, count: e.members.length });
    }
  }
  return { layers, values: rows, meta };
}

/** Items of a list (alerts) of the layers shown under `entries`: one line per item of a shown layer, and
 * one per (kind, folded group) holding the items of its layers, in the order of their first item. */
export interface ItemLine<T> {
  kind: string;
  items: T[];
  /** The folded group, or null for a layer's own line. */
  group: { key: string; label: string; size: number } | null;
}

export function groupItems<T>(
  items: readonly T[],
  rowOf: (item: T) => number,
  kindOf: (item: T) => string,
  entries: readonly Entry[],
): ItemLine<T>[] {
  const out: ItemLine<T>[] = [];
  const byKey = new Map<string, ItemLine<T>>();
  for (const item of items) {
    const k = entryOf(entries, rowOf(item));
    if (k < 0) continue;
    const e = entries[k];
    const kind = kindOf(item);
    if (e.kind === "layer") {
      out.push({ kind, items: [item], group: null });
      continue;
    }
    const key = kind + "\u0000" + e.node.key;
    const line = byKey.get(key);
    if (line) line.items.push(item);
    else {
      const fresh: ItemLine<T> = { kind, items: [item], group: { key: e.node.key, label: e.node.label, size: e.members.length } };
      byKey.set(key, fresh);
      out.push(fresh);
    }
  }
  return out;
}

/** The key of the folded group that shows layer `name` (none when the layer has its own row, or is hidden). */
export function foldedGroupOf(entries: readonly Entry[], names: readonly string[], name: string | null): string | null {
  if (name === null) return null;
  const k = entryOf(entries, names.indexOf(name));
  const e = k < 0 ? null : entries[k];
  return e && e.kind === "group" ? e.node.key : null;
}
