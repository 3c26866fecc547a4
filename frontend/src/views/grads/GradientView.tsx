// The gradient view: the gradient-flow chart at a chosen step, a layer × step heatmap of a gradient
// statistic, the alerts panel (vanishing / exploding / NaN / Inf) and the selected layer over steps.
import { selectedRun } from "../../core/state";
import { visibleEntries } from "../../lib/layer_groups";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { GroupTools } from "../../widgets/GroupTools";
import { AlertsCard } from "./AlertsCard";
import { FlowCard } from "./FlowCard";
import { GradHeatmapCard } from "./GradHeatmapCard";
import { LayerCard } from "./LayerCard";
import { NoiseCard } from "./NoiseCard";
import type { GradientsResponse } from "./api";
import { gradData, gradFilter, gradFoldDepth, gradients, gradsFold, gradTree, gradTreeDepth } from "./state";

/** The view's layer filter and folding (alerts, flow chart and heatmap follow it). */
function Grouping(props: { data: GradientsResponse }) {
  const tree = gradTree.value;
  const filter = gradFilter.value;
  const depth = gradFoldDepth.value;
  const maxDepth = gradTreeDepth.value;
  const shown = tree ? visibleEntries(tree, gradsFold.value, { keep: filter }, depth).length : 0;
  const layers = props.data.layers.reduce((n, _, i) => n + (filter(i) ? 1 : 0), 0);
  return (
    <section class="ins-card ins-card-tools" data-testid="grad-grouping">
      <GroupTools
        fold={gradsFold}
        maxDepth={maxDepth}
        depth={depth}
        shown={shown}
        layers={layers}
        note={maxDepth > 0 ? "norms and max |g| by their largest value, mean |g| by the mean" : undefined}
        testid="grads"
      />
    </section>
  );
}

function NoGradients() {
  return (
    <section class="ins-card" data-testid="grad-empty">
      <h2 class="ins-card-title">No gradient records in this run</h2>
      <p class="ins-muted">
        Gradients are read from your own <code>loss.backward()</code> at the recorded steps of{" "}
        <code>writer.watch(model, every=10)</code> (on by default; <code>grads=False</code> turns it off). Steps
        run under <code>torch.no_grad()</code> have none.
      </p>
    </section>
  );
}

export function GradientView() {
  const state = gradients.value;
  const data = gradData.value;
  const run = selectedRun.value;
  if (state.error && !data) return <ErrorMessage title="Could not load the gradients" message={state.error} />;
  if (!data) return <div class="ins-loading">{state.loading ? "Loading gradients…" : ""}</div>;
  if (!data.steps.length) return <NoGradients />;
  return (
    <div class={data.run !== run ? "ins-stale" : ""} data-testid="grad-view" data-run={data.run}>
      {state.error ? <ErrorMessage title="Could not refresh the gradients" message={state.error} /> : null}
      {data.totalSteps !== undefined && data.totalSteps > data.steps.length ? (
        <div class="ins-hint" data-testid="grad-thinned">
          {data.steps.length} of {data.totalSteps} recorded steps shown in the overview (each column shows its last
          step; NaN/Inf are counted over the whole column). The layer charts show every step.
        </div>
      ) : null}
      {data.sampled ? (
        <div class="ins-hint" data-testid="grad-sampled">
          A sample of {data.steps.length} steps while every step of this run is read; until then the alerts
          and NaN/Inf counts are those of the sample…
        </div>
      ) : null}
      <Grouping data={data} />
      <AlertsCard data={data} />
      <FlowCard data={data} />
      <GradHeatmapCard data={data} />
      <LayerCard data={data} />
      <NoiseCard />
    </div>
  );
}
