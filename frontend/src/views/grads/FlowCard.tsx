// The gradient-flow card: the step player over the recorded steps and the flow chart at the shown step.
import { useMemo } from "preact/hooks";
import { darkMode, selectedLayer } from "../../core/state";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { GradientsResponse } from "./api";
import { decadeRange } from "./chart_style";
import { FlowChart } from "./FlowChart";
import { flowColumns } from "./math";
import { gradStep, gradStepIndex, shownGradStep } from "./state";

export function FlowCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const index = gradStepIndex.value;
  const dark = darkMode.value;
  const cols = useMemo(() => flowColumns(data, Math.max(0, index)), [data, index]);
  const range = useMemo(() => decadeRange(data), [data]);
  const step = shownGradStep.value;
  return (
    <section class="ins-card" data-testid="gradflow-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Gradient flow{step !== null ? ` at step ${step}` : ""}</h2>
        <span class="ins-card-sub">mean and max |g| of each layer's parameter gradients, input to output, log scale</span>
      </div>
      <StepPlayer
        class="ins-grad-stepbar"
        steps={data.steps}
        index={index}
        onIndex={(i) => {
          gradStep.value = data.steps[i];
        }}
        ids={{ slider: "grad-step-slider", label: "grad-step-label", prev: "grad-prev", next: "grad-next" }}
        ariaLabel="Step"
        arrows
      />
      {cols.layers.length ? (
        <div data-testid="gradflow-chart" data-step={step ?? ""} data-layers={cols.layers.length}>
          <FlowChart
            cols={cols}
            range={range}
            selected={selectedLayer.value}
            dark={dark}
            onPick={(layer) => {
              selectedLayer.value = layer;
            }}
          />
        </div>
      ) : (
        <div class="ins-muted">No layer with parameter gradients was recorded.</div>
      )}
    </section>
  );
}
