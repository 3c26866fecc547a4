// The dead/saturated unit alerts of every layer, each with a sparkline of its fraction over steps.
// Clicking a layer opens its layer panel. The list follows the model table's filter; with many alerted
// layers, those of one folded group of layers (lib/layer_groups) show as one line per kind.
import { signal } from "@preact/signals";
import { useMemo } from "preact/hooks";
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { buildLayerTree, groupItems, initialFold, matchesFilter, toggleGroup, visibleEntries, type FoldState, type ItemLine } from "../../lib/layer_groups";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { UnitAlert } from "./math";
import { treeFilter, unitAlerts, unitStats } from "./state";

/** Which groups of alerted layers are unfolded (the depth: the default for the number of lines). */
const unitFold = signal<FoldState>(initialFold());

function Sparkline(props: { series: (number | null)[] }) {
  const w = 80;
  const h = 18;
  const n = props.series.length;
  const points = props.series
    .map((v, j) => (v === null ? null : `${n > 1 ? (j / (n - 1)) * w : w / 2},${h - v * h}`))
    .filter((p): p is string => p !== null)
    .join(" ");
  return (
    <svg class="ins-spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} aria-hidden="true">
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

const UNIT_TEXT: Record<UnitAlert["kind"], string> = { dead: "Dead channels", saturated: "Saturated channels" };

function AlertItem(props: { a: UnitAlert }) {
  const { a } = props;
  return (
    <li class={"ins-alert " + a.kind} data-testid="unit-alert" data-kind={a.kind} data-layer={a.layer}>
      <span class="ins-alert-kind">{UNIT_TEXT[a.kind]}</span>
      <button type="button" class="ins-link" data-testid="unit-alert-layer" onClick={() => {
          selectedLayer.value = a.layer;
        }}>
        {a.layer}
      </button>
      <span class="ins-alert-when">
        since step <b>{a.firstStep}</b>
      </span>
      <span class="ins-alert-detail ins-muted">{`now ${formatValue(a.last === null ? null : Math.round(a.last * 1000) / 10)}% · max ${formatValue(Math.round(a.max * 1000) / 10)}%`}</span>
      <Sparkline series={a.series} />
    </li>
  );
}

function GroupLine(props: { line: ItemLine<UnitAlert> }) {
  const { line } = props;
  const g = line.group!;
  const kind = line.kind as UnitAlert["kind"];
  const first = line.items.reduce((m, a) => Math.min(m, a.firstStep), Infinity);
  return (
    <li class={"ins-alert " + kind} data-testid="unit-alert-group" data-kind={kind} data-group={g.key}>
      <span class="ins-alert-kind">{UNIT_TEXT[kind]}</span>
      <button
        type="button"
        class="ins-link"
        data-testid="unit-alert-group-toggle"
        aria-expanded={false}
        title="Unfold this group to list its layers"
        onClick={() => {
          unitFold.value = toggleGroup(unitFold.value, g.key, true);
        }}
      >
        ▶ {g.label}
      </button>
      <span class="ins-alert-when">
        {line.items.length} of its layers · since step <b>{first}</b>
      </span>
    </li>
  );
}

export function UnitAlertsCard() {
  const state = unitStats.value;
  const all = unitAlerts.value;
  const filter = treeFilter.value;
  const fold = unitFold.value;
  const layerList = state.data?.layers;
  const tree = useMemo(() => (layerList ? buildLayerTree(layerList.map((l) => l.name)) : null), [layerList]);
  const lines = useMemo(() => {
    if (!tree || !layerList) return [];
    const index = new Map(layerList.map((l, i) => [l.name, i]));
    const alerted = new Set(all.map((a) => index.get(a.layer) ?? -1));
    const keep = (i: number) => alerted.has(i) && matchesFilter(filter, layerList[i].name, layerList[i].moduleType);
    const entries = visibleEntries(tree, fold, { keep });
    return groupItems(all, (a) => index.get(a.layer) ?? -1, (a) => a.kind, entries);
  }, [tree, layerList, all, filter, fold]);
  const list = all;
  return (
    <section class="ins-card" data-testid="unit-alerts" data-count={list.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Dead and saturated units</h2>
        <span class="ins-card-sub">measured on the recorded training batch of each recorded step</span>
      </div>
      {state.error ? <ErrorMessage title="Could not load the unit statistics" message={state.error} /> : null}
      {state.data && list.length === 0 ? (
        <div class="ins-muted" data-testid="unit-alerts-none">
          No dead or saturated channels at any recorded step.
        </div>
      ) : null}
      {list.length ? (
        <ul class="ins-alerts">
          {lines.length === 0 ? <li class="ins-muted">No alert for the modules that match the filter.</li> : null}
          {lines.map((line) =>
            line.group ? (
              <GroupLine key={line.kind + "\u0000" + line.group.key} line={line} />
            ) : (
              <AlertItem key={line.kind + line.items[0].layer} a={line.items[0]} />
            ),
          )}
        </ul>
      ) : null}
    </section>
  );
}
