// The "Feature maps" view: pick a layer of the selected run (left panel), see its feature maps over
// training and, for convolutions whose weights were recorded, its filters (FeatureMapsPanel).
import { selectedRun } from "../../core/state";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { FeatureMapsPanel } from "./FeatureMapsPanel";
import { shownLayer, useRunLayers } from "./run_layers";

export function FeatureMapsView() {
  const run = selectedRun.value;
  const { data, error } = useRunLayers(run);
  let body;
  if (run === null) body = <div class="ins-muted">Select a run.</div>;
  else if (error) body = <ErrorMessage title="Could not load the run's feature maps" message={error} />;
  else if (!data) body = <div class="ins-loading">Loading feature maps…</div>;
  else {
    const layer = shownLayer(data);
    body =
      layer === null ? (
        <div class="ins-empty" data-testid="fmap-empty">
          <h2>No feature maps in this run</h2>
          <p>
            Give <code>watch</code> a fixed batch of probe images and Insight records, every <code>maps_every</code> steps, the
            most active channels of every watched layer on it, and the first convolution's filters:
          </p>
          <pre>{`writer.watch(model, probe=images[:16], maps_every=100, maps_k=16)`}</pre>
        </div>
      ) : (
        <FeatureMapsPanel key={run + "\u0000" + layer} run={run} layer={layer} />
      );
  }
  return (
    <section class="ins-card ins-fm" data-testid="fmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Feature maps</h2>
        {run !== null ? <span class="ins-card-sub">{run}</span> : null}
      </div>
      {body}
    </section>
  );
}
