// The gradient-flow card: the step player over the recorded steps and the flow chart at the shown step.
import { useMemo } from "preact/hooks";
import { darkMode, selectedLayer } from "../../core/state";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { GradientsResponse } from "./api";
import { decadeRange } from "./chart_style";
import { FlowChart } from "./FlowChart";
import { entryOf, toggleGroup, visibleEntries } from "../../lib/layer_groups";
import { groupedFlowColumns, rowsWithData } from "./math";
import { gradFilter, gradFoldDepth, gradsFold, gradStep, gradStepIndex, gradTree, shownGradStep } from "./state";

export function FlowCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const index = gradStepIndex.value;
  const dark = darkMode.value;
  const tree = gradTree.value;
  const filter = gradFilter.value;
  const fold = gradsFold.value;
  const depth = gradFoldDepth.value;
  // Bars: the layers with parameter gradients, a folded group as one bar (no header bars).
  const entries = useMemo(() => {
    if (!tree) return [];
    const withData = new Set(rowsWithData(data, "gradMeanAbs"));
    return visibleEntries(tree, fold, { keep: (i) => withData.has(i) && filter(i), headers: false }, depth);
  }, [data, tree, filter, fold, depth]);
  const cols = useMemo(() => groupedFlowColumns(data, Math.max(0, index), entries), [data, index, entries]);
  const selected = selectedLayer.value;
  const selectedIdx = useMemo(() => {
    const row = selected === null ? -1 : data.layers.findIndex((l) => l.name === selected);
    return row < 0 ? -1 : entryOf(entries, row);
  }, [data, entries, selected]);
  const range = useMemo(() => decadeRange(data), [data]);
  const step = shownGradStep.value;
  return (
    <section class="ins-card" data-testid="gradflow-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Gradient flow{step !== null ? ` at step ${step}` : ""}</h2>
        <span class="ins-card-sub">
          mean and max |g| of each layer's parameter gradients, input to output, log scale
          {cols.groups?.some(Boolean) ? " · a folded group is one bar: the mean of its layers' mean |g| and the largest max |g|" : ""}
        </span>
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
        <div data-testid="gradflow-chart" data-step={step ?? ""} data-layers={cols.layers.length} data-groups={cols.groups?.filter(Boolean).length ?? 0}>
          <FlowChart
            cols={cols}
            range={range}
            selectedIndex={selectedIdx}
            dark={dark}
            onPick={(k) => {
              const key = cols.keys?.[k] ?? cols.layers[k];
              if (cols.groups?.[k]) gradsFold.value = toggleGroup(gradsFold.value, key, true);
              else selectedLayer.value = key;
            }}
          />
        </div>
      ) : (
        <div class="ins-muted">No layer with parameter gradients was recorded.</div>
      )}
    </section>
  );
}
