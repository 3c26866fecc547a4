// The layer × step heatmap card.
import { useMemo } from "preact/hooks";
import { colormap, darkMode, layerInfoByName, selectedLayer, selectedRun } from "../../core/state";
import type { ColormapName } from "../../lib/colormaps";
import { formatShape, formatValue } from "../../lib/format";
import { normalize } from "../../lib/heatmap_math";
import { AGGREGATE_TEXT, autoDepth, buildLayerTree, foldedGroupOf, groupedMatrix, matchesFilter, toggleGroup, treeDepth, visibleEntries } from "../../lib/layer_groups";
import { GroupTools } from "../../widgets/GroupTools";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { ColorLegend, Heatmap } from "../../widgets/Heatmap";
import type { HeatmapResponse } from "./api";
import { heatmap, normalization, selectedStat, STAT_AGGREGATE, STAT_LABELS, statsFold, type StatName } from "./state";

/** The heatmap's rows grouped by module and filtered (statsFold): what the Heatmap draws. */
function useGrouped(data: HeatmapResponse | null, stat: StatName) {
  const info = layerInfoByName.value;
  const fold = statsFold.value;
  const tree = useMemo(() => (data ? buildLayerTree(data.layers) : null), [data?.layers]);
  return useMemo(() => {
    if (!data || !tree) return null;
    const keep = (i: number) => matchesFilter(fold.filter, data.layers[i], info.get(data.layers[i])?.moduleType);
    const depth = fold.depth ?? autoDepth(tree, keep);
    const entries = visibleEntries(tree, fold, { keep }, depth);
    const agg = STAT_AGGREGATE[stat] ?? "mean";
    const m = groupedMatrix(data.layers, data.values, data.steps.length, entries, agg);
    const grouped = m.meta.some((r) => r.kind === "group") || treeDepth(tree) > 0;
    const shownLayers = data.layers.reduce((n, _, i) => n + (keep(i) ? 1 : 0), 0);
    return { ...m, entries, depth, maxDepth: treeDepth(tree), grouped, note: AGGREGATE_TEXT[agg], shownLayers };
  }, [data, tree, fold, info, stat]);
}

function Legend(props: { colormap: ColormapName }) {
  const state = heatmap.value;
  const mode = normalization.value;
  const data = state.data;
  const range = useMemo(() => {
    if (!data) return null;
    const n = normalize(data.values, data.steps.length, "global");
    return { min: n.min, max: n.max };
  }, [data]);
  if (!data || !range) return null;
  if (mode === "row") {
    return (
      <ColorLegend
        colormap={props.colormap}
        low="layer min"
        high="layer max"
        title={`Each row is scaled to its own range. Overall range: ${formatValue(range.min)} … ${formatValue(range.max)}`}
      />
    );
  }
  return <ColorLegend colormap={props.colormap} low={formatValue(range.min)} high={formatValue(range.max)} />;
}

export function HeatmapCard() {
  const state = heatmap.value;
  const run = selectedRun.value;
  const stat = selectedStat.value;
  const data = state.data;
  const statLabel = STAT_LABELS[stat] ?? stat;
  const info = layerInfoByName.value;
  const grouped = useGrouped(data, stat);
  return (
    <section class="ins-card" data-testid="heatmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">{statLabel} per layer and step</h2>
        {run !== null ? <span class="ins-card-sub">{run}</span> : null}
        {data && data.totalSteps !== undefined && data.totalSteps > data.steps.length ? (
          <span class="ins-card-sub" data-testid="heatmap-thinned" title="Each column shows its last step; NaN/Inf counts are the column's maximum. A layer's charts show every step.">
            {data.steps.length} of {data.totalSteps} steps
          </span>
        ) : null}
        {data && data.sampled ? (
          <span class="ins-card-sub" data-testid="heatmap-sampled" title="The first answer on a run not read yet: a sample of its steps, replaced by every step once read.">
            a sample of {data.steps.length} steps, reading all…
          </span>
        ) : null}
        {state.loading && !(data && data.sampled) ? <span class="ins-loading">Loading…</span> : null}
        <span class="ins-spacer" />
        <Legend colormap={colormap.value} />
      </div>
      {state.error ? <ErrorMessage title="Could not load the heatmap" message={state.error} /> : null}
      {!data && !state.error && state.loading ? <div class="ins-placeholder" /> : null}
      {data && data.layers.length === 0 ? (
        <div class="ins-muted" data-testid="heatmap-empty">
          {stat === "massiveCount"
            ? "This run has no massive-activation records: no token layer was watched, health=False, or it was recorded before Insight had them."
            : "This run has no recorded layers yet."}
        </div>
      ) : null}
      {data && data.layers.length > 0 && grouped ? (
        <GroupTools
          fold={statsFold}
          maxDepth={grouped.maxDepth}
          depth={grouped.depth}
          shown={grouped.layers.length}
          layers={grouped.shownLayers}
          note={grouped.grouped ? grouped.note : undefined}
          testid="stats"
        />
      ) : null}
      {data && data.layers.length > 0 && grouped && grouped.layers.length === 0 ? (
        <div class="ins-muted" data-testid="stats-group-empty">No layer matches the filter.</div>
      ) : null}
      {data && grouped && grouped.layers.length > 0 ? (
        <div class={data.run !== run || data.stat !== stat ? "ins-stale" : ""}>
        <Heatmap
          data={{ ...data, layers: grouped.layers, values: grouped.values }}
          rowMeta={grouped.grouped ? grouped.meta : undefined}
          groupNote={grouped.note}
          selectedGroup={foldedGroupOf(grouped.entries, data.layers, selectedLayer.value)}
          onToggleGroup={(key, open) => {
            statsFold.value = toggleGroup(statsFold.value, key, open);
          }}
          colormap={colormap.value}
          normalization={normalization.value}
          selectedLayer={selectedLayer.value}
          onSelectLayer={(layer) => {
            selectedLayer.value = layer;
          }}
          describeLayer={(layer) => {
            const l = info.get(layer);
            return l ? [l.moduleType, formatShape(l.shape)].filter(Boolean).join(" ") : undefined;
          }}
          statLabel={statLabel}
          dark={darkMode.value}
        />
        </div>
      ) : null}
    </section>
  );
}
