// The gradient heatmap card: one gradient statistic per layer and step, coloured on a log scale.
import { useMemo } from "preact/hooks";
import { colormap, darkMode, selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ColorLegend, Heatmap } from "../../widgets/Heatmap";
import type { GradientsResponse } from "./api";
import { log10Rows, rowsWithData } from "./math";
import { gradField, gradStep, gradStepIndex, HEATMAP_FIELDS } from "./state";

export function GradHeatmapCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const field = gradField.value;
  const def = HEATMAP_FIELDS.find((f) => f.id === field) ?? HEATMAP_FIELDS[0];
  const heat = useMemo(() => {
    const rows = rowsWithData(data, def.id);
    const values = log10Rows(rows.map((i) => data.values[def.id]?.[i] ?? []));
    return { run: data.run, stat: def.id, layers: rows.map((i) => data.layers[i].name), steps: data.steps, values };
  }, [data, def.id]);
  const range = useMemo(() => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const row of heat.values) for (const v of row) if (v !== null) ((lo = Math.min(lo, v)), (hi = Math.max(hi, v)));
    return lo <= hi ? [lo, hi] : null;
  }, [heat]);
  return (
    <section class="ins-card" data-testid="grad-heatmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">{def.label} per layer and step</h2>
        <span class="ins-card-sub">log scale</span>
        <span class="ins-spacer" />
        {range ? (
          <ColorLegend colormap={colormap.value} low={formatValue(10 ** range[0])} high={formatValue(10 ** range[1])} />
        ) : null}
      </div>
      {heat.layers.length ? (
        <Heatmap
          data={heat}
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
          formatCell={(v) => formatValue(10 ** v)}
          dark={darkMode.value}
        />
      ) : (
        <div class="ins-muted">No layer has this statistic in this run.</div>
      )}
    </section>
  );
}
