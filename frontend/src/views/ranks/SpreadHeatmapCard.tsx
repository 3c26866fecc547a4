// The spread heatmap: per layer and step, how far the most distant rank is from the others (or, for two
// ranks, how far apart they are), coloured on a log scale.
import { useMemo } from "preact/hooks";
import { colormap, darkMode, selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ColorLegend, Heatmap } from "../../widgets/Heatmap";
import type { RankSpreadResponse } from "./api";
import { log10Matrix, valueRange } from "./math";
import { chartLayer, shownMeasure } from "./state";

const FLOOR = { deviation: 1e-2, relativeSpread: 1e-6 };
const TITLE = {
  deviation: "Largest deviation of a rank from the others",
  relativeSpread: "Spread across ranks (max − min) / |median|",
};

export function SpreadHeatmapCard(props: { data: RankSpreadResponse }) {
  const { data } = props;
  const measure = shownMeasure.value;
  const heat = useMemo(() => {
    const floor = FLOOR[measure];
    // Rows of the layers with this statistic on some rank (a ReLU has no parameter gradients).
    const rows = data.layers.flatMap((_, i) => (data.median[i]?.some((v) => v !== null) ? [i] : []));
    const raw = rows.map((i) => data[measure][i].map((v) => (v === null ? null : Math.max(v, floor))));
    const values = log10Matrix(raw);
    return {
      run: data.family,
      stat: `${measure}:${data.stat}`,
      layers: rows.map((i) => data.layers[i].name),
      steps: data.steps,
      values,
      range: valueRange(values),
    };
  }, [data, measure]);
  const range = heat.range;
  const types = useMemo(() => new Map(data.layers.map((l) => [l.name, l.moduleType])), [data]);
  return (
    <section class="ins-card" data-testid="rank-heatmap-card" data-measure={measure}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">
          {TITLE[measure]}: {data.kind} {data.stat}
        </h2>
        <span class="ins-card-sub">
          per layer and step, log scale
          {data.totalSteps > data.steps.length ? ` · ${data.steps.length} of ${data.totalSteps} steps, each column its maximum` : ""}
        </span>
        <span class="ins-spacer" />
        {range ? <ColorLegend colormap={colormap.value} low={formatValue(10 ** range[0])} high={formatValue(10 ** range[1])} /> : null}
      </div>
      {heat.layers.length && heat.steps.length ? (
        <Heatmap
          data={heat}
          colormap={colormap.value}
          normalization="global"
          selectedLayer={chartLayer.value}
          onSelectLayer={(layer) => {
            selectedLayer.value = layer;
          }}
          describeLayer={(layer) => types.get(layer)}
          statLabel={measure === "deviation" ? "deviation" : "spread"}
          formatCell={(v) => formatValue(10 ** v)}
          dark={darkMode.value}
        />
      ) : (
        <div class="ins-muted">No rank of this family recorded {data.kind} {data.stat}.</div>
      )}
    </section>
  );
}
