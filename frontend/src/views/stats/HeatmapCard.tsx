// The layer × step heatmap card.
import { useMemo } from "preact/hooks";
import { colormap, darkMode, layerInfoByName, selectedLayer, selectedRun } from "../../core/state";
import type { ColormapName } from "../../lib/colormaps";
import { formatShape, formatValue } from "../../lib/format";
import { normalize } from "../../lib/heatmap_math";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { ColorLegend, Heatmap } from "../../widgets/Heatmap";
import { heatmap, normalization, selectedStat, STAT_LABELS } from "./state";

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
      {data && data.layers.length === 0 ? <div class="ins-muted">This run has no recorded layers yet.</div> : null}
      {data && data.layers.length > 0 ? (
        <div class={data.run !== run || data.stat !== stat ? "ins-stale" : ""}>
        <Heatmap
          data={data}
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
