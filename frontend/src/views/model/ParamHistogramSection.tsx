// The layer panel's weight and gradient histograms: for each parameter tensor of the layer (weight and
// bias apart), its values and its gradient at the step chosen with the activation histogram's step
// player (`histStep`: the latest recorded histogram at or before it). Each step has its own edges.
import { darkMode } from "../../core/state";
import { formatValue } from "../../lib/format";
import { stepIndexAtOrBefore } from "../../lib/steps";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { ParamHistogramSeries } from "./api";
import { HistogramBars } from "./HistogramSection";
import type { LayerSectionProps } from "./LayerPanel";
import { binLeftEdges } from "./math";
import { histStep, paramHistograms } from "./state";

const COLORS = { weights: "#1a73e8", grads: "#d93025" } as const;
const TITLES = { weights: "values", grads: "gradient" } as const;

function ParamHistogram(props: { param: string; kind: "weights" | "grads"; series: ParamHistogramSeries }) {
  const s = props.series;
  const index = stepIndexAtOrBefore(s.steps, histStep.value);
  if (index < 0) {
    return <div class="ins-muted" data-testid="param-hist" data-param={props.param} data-kind={props.kind} data-step="">{`${TITLES[props.kind]}: not recorded`}</div>;
  }
  const counts = s.counts[index];
  const x = binLeftEdges(s.low[index], s.high[index], counts.length);
  return (
    <div class="ins-param-hist" data-testid="param-hist" data-param={props.param} data-kind={props.kind} data-step={s.steps[index]} data-counts={counts.join(",")}>
      <div class="ins-muted">{`${TITLES[props.kind]} · step ${s.steps[index]} · [${formatValue(s.low[index])}, ${formatValue(s.high[index])}]`}</div>
      <HistogramBars x={x} counts={counts} dark={darkMode.value} color={COLORS[props.kind]} height={120} />
    </div>
  );
}

/** One histogram of the values and one of the gradient per parameter tensor of the layer. */
export function ParamHistogramSection(props: LayerSectionProps) {
  const state = paramHistograms.value;
  const d = state.data && state.data.run === props.run && state.data.layer === props.layer ? state.data : null;
  if (d && d.params.length === 0 && !state.loading) return null; // no parameters (or none recorded)
  return (
    <section class="ins-card" data-testid="param-histograms" data-layer={d?.layer ?? ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Weight and gradient histograms</h2>
        {d ? <span class="ins-card-sub">{`${d.bins} bins · edges per step, symmetric around 0 · step from the activation histogram's player`}</span> : null}
        <span class="ins-spacer" />
        {state.loading ? <span class="ins-loading">Loading…</span> : null}
      </div>
      {state.error ? <ErrorMessage title="Could not load the weight and gradient histograms" message={state.error} /> : null}
      {d
        ? d.params.map((p) => (
            <div class="ins-param-row" key={p.name} data-testid="param-row" data-param={p.name}>
              <div class="ins-param-name">{`${p.name} [${p.shape.join(", ")}]`}</div>
              <div class="ins-param-pair">
                <ParamHistogram param={p.name} kind="weights" series={p.weights} />
                <ParamHistogram param={p.name} kind="grads" series={p.grads} />
              </div>
            </div>
          ))
        : null}
    </section>
  );
}
