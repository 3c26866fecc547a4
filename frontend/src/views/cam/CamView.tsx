// The overlay viewer: class-activation maps (and saliency maps) over the probe images, one tile per
// image × method (× comparison run), a step slider with play/pause, labels and predictions under
// each image, an enlarged detail panel, and PNG downloads. Pixels are painted by OverlayEngine;
// the component tree re-renders only when the grid's structure changes, and per step only the
// small components that show step-dependent text.
import { useEffect, useState } from "preact/hooks";
import { selectedRun } from "../../core/state";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { CamEmpty } from "./CamEmpty";
import { CamStepBar } from "./CamStepBar";
import { Grid } from "./Grid";
import { MapLegend } from "./MapLegend";
import { OverlayEngine } from "./overlay_engine";
import { availableLayers, camKind, camLayer, compareRun, frameModel, mapsA, playing, probeA, runSeries } from "./state";
import { download, EngineContext, engineStatus, setActiveEngine, activeEngine, settings, structureKey } from "./viewer";
import { layerLabel } from "./labels";

export function CamView() {
  const [engine, setEngine] = useState<OverlayEngine | null>(null);
  useEffect(() => {
    const e = new OverlayEngine(frameModel, settings, playing, (s) => {
      const prev = engineStatus.peek();
      if (prev.pending !== s.pending || prev.error !== s.error) engineStatus.value = s;
    });
    setActiveEngine(e);
    setEngine(e);
    return () => {
      e.dispose();
      if (activeEngine() === e) setActiveEngine(null);
      playing.value = false;
    };
  }, []);

  const run = selectedRun.value;
  const maps = mapsA.value;
  const probe = probeA.value;
  void structureKey.value; // re-render on layout changes only
  const model = frameModel.peek();
  const series = runSeries.value;
  const kind = camKind.value;
  const compare = compareRun.value;

  let body;
  if (run === null) {
    body = <div class="ins-muted">Select a run.</div>;
  } else if (maps.error && !series.length) {
    body = <ErrorMessage title="Could not load the run's maps" message={maps.error} />;
  } else if (!series.length && (maps.loading || !maps.data || maps.data.run !== run)) {
    body = <div class="ins-loading">Loading maps…</div>;
  } else if (!series.length) {
    body = <CamEmpty run={run} />;
  } else if (!model) {
    body = <div class="ins-loading">Loading…</div>;
  } else {
    body = <Grid model={model} />;
  }

  const layer = camLayer.value;
  return (
    <EngineContext.Provider value={engine}>
      <section class="ins-card ins-cam" data-testid="cam-card">
        <div class="ins-card-head">
          <h2 class="ins-card-title">{kind === "saliency" ? "Saliency maps" : "Class activation maps"}</h2>
          {run !== null ? (
            <span class="ins-card-sub" title={kind === "cam" ? availableLayers.value.find((l) => l.name === (layer ?? ""))?.reason || undefined : undefined}>
              {compare ? `A: ${run} · B: ${compare}` : run}
              {kind === "cam" && (layer || availableLayers.value.some((l) => l.name === (layer ?? ""))) ? ` · ${layerLabel(layer ?? "")}` : ""}
            </span>
          ) : null}
          {maps.loading || probe.loading ? <span class="ins-loading">Loading…</span> : null}
          <span class="ins-spacer" />
          {model ? <MapLegend /> : null}
          {model ? (
            <button type="button" class="ins-btn" data-testid="download-grid" onClick={() => download("grid")}>
              Download grid
            </button>
          ) : null}
        </div>
        {probe.error && series.length ? <ErrorMessage title="Could not load the probe images" message={probe.error} /> : null}
        {model ? <CamStepBar /> : null}
        {body}
      </section>
    </EngineContext.Provider>
  );
}
