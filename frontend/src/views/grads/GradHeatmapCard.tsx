// The gradient heatmap card: one gradient statistic per layer and step, coloured on a log scale.
import { useMemo } from "preact/hooks";
import { colormap, darkMode, selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ColorLegend, Heatmap } from "../../widgets/Heatmap";
import type { GradientsResponse } from "./api";
import { AGGREGATE_TEXT, foldedGroupOf, groupedMatrix, toggleGroup, visibleEntries } from "../../lib/layer_groups";
import { log10Rows, rowsWithData } from "./math";
import { GRAD_AGGREGATE, gradField, gradFilter, gradFoldDepth, gradsFold, gradStep, gradStepIndex, gradTree, gradTreeDepth, HEATMAP_FIELDS } from "./state";

export function GradHeatmapCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const field = gradField.value;
  const def = HEATMAP_FIELDS.find((f) => f.id === field) ?? HEATMAP_FIELDS[0];
  const tree = gradTree.value;
  const filter = gradFilter.value;
  const fold = gradsFold.value;
  const depth = gradFoldDepth.value;
  const grouped = gradTreeDepth.value > 0;
  const agg = GRAD_AGGREGATE[def.id] ?? "max";
  const names = useMemo(() => data.layers.map((l) => l.name), [data]);
  // Rows: the layers with this statistic, grouped by module (a folded group: its layers' max or mean).
  const heat = useMemo(() => {
    const withData = new Set(rowsWithData(data, def.id));
    const entries = tree ? visibleEntries(tree, fold, { keep: (i) => withData.has(i) && filter(i) }, depth) : [];
    const m = groupedMatrix(names, data.values[def.id] ?? [], data.steps.length, entries, agg);
    const logs = log10Rows(m.values);
    let lo = Infinity;
    let hi = -Infinity;
    for (const row of logs) for (const v of row) if (v !== null) ((lo = Math.min(lo, v)), (hi = Math.max(hi, v)));
    const range = lo <= hi ? ([lo, hi] as [number, number]) : null;
    // An exact 0 (a gradient that underflowed: vanished) has no log: drawn a decade below the smallest
    // value, in the colormap's lowest colour, rather than as "no data".
    const zero = range ? range[0] - 1 : 0;
    const values = logs.map((row, i) => row.map((v, j) => (v === null && m.values[i][j] === 0 ? zero : v)));
    return { run: data.run, stat: def.id, layers: m.layers, meta: m.meta, entries, steps: data.steps, values, range, zero };
  }, [data, names, def.id, tree, filter, fold, depth, agg]);
  const range = heat.range;
  return (
    <section class="ins-card" data-testid="grad-heatmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">{def.label} per layer and step</h2>
        <span class="ins-card-sub">log scale{grouped ? ` · folded rows: ${AGGREGATE_TEXT[agg]}` : ""}</span>
        <span class="ins-spacer" />
        {range ? (
          <ColorLegend colormap={colormap.value} low={formatValue(10 ** range[0])} high={formatValue(10 ** range[1])} />
        ) : null}
      </div>
      {heat.layers.length ? (
        <Heatmap
          data={heat}
          rowMeta={grouped ? heat.meta : undefined}
          groupNote={AGGREGATE_TEXT[agg]}
          selectedGroup={foldedGroupOf(heat.entries, names, selectedLayer.value)}
          onToggleGroup={(key, open) => {
            gradsFold.value = toggleGroup(gradsFold.value, key, open);
          }}
          colormap={colormap.value}
          normalization="global"
          selectedLayer={selectedLayer.value}
          onSelectLayer={(layer) => {
            selectedLayer.value = layer;
          }}
          onSelectCell={(layer, col) => {
            selectedLayer.value = layer;
            gradStep.value = data.steps[col];
          }}
          markColumn={gradStepIndex.value}
          statLabel={def.short}
          formatCell={(v) => (range && v <= heat.zero ? "0" : formatValue(10 ** v))}
          dark={darkMode.value}
        />
      ) : (
        <div class="ins-muted">{fold.filter.trim() ? "No layer with this statistic matches the filter." : "No layer has this statistic in this run."}</div>
      )}
    </section>
  );
}
