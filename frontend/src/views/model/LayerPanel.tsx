// The layer panel: everything Insight recorded about one layer, one section after another. A new
// section is one entry in LAYER_SECTIONS (a component taking {run, layer}).
import type { ComponentType } from "preact";
import { selectedRun } from "../../core/state";
import { showLayerCams } from "../cam/state";
import { FeatureMapsPanel } from "../fmaps/FeatureMapsPanel";
import { LayerChartsView } from "../stats/LayerCharts";
import { HistogramSection } from "./HistogramSection";
import { ParamHistogramSection } from "./ParamHistogramSection";
import { camLayers } from "./state";
import { UnitsSection } from "./UnitsSection";

export interface LayerSectionProps {
  run: string;
  layer: string;
}

/** Activation statistics over steps (the charts of the statistics view). */
function StatsSection() {
  return <LayerChartsView />;
}

/** A link to the layer's CAMs, when CAMs were recorded for it. */
function CamLinkSection(props: LayerSectionProps) {
  if (!camLayers.value.has(props.layer)) return null;
  return (
    <section class="ins-card" data-testid="layer-cam-link">
      <button
        type="button"
        class="ins-link"
        onClick={() => showLayerCams(props.layer)}
      >
        Open the CAMs recorded for this layer
      </button>
    </section>
  );
}

/** The layer's feature maps of the probe and its filters, with their own step slider. */
function FeatureMapsSection(props: LayerSectionProps) {
  return (
    <section class="ins-card" data-testid="layer-fmaps">
      <h2 class="ins-card-title">Feature maps</h2>
      <FeatureMapsPanel run={props.run} layer={props.layer} />
    </section>
  );
}

/** The sections of the layer panel, in order. */
export const LAYER_SECTIONS: ComponentType<LayerSectionProps>[] = [
  StatsSection,
  HistogramSection,
  ParamHistogramSection,
  UnitsSection,
  FeatureMapsSection,
  CamLinkSection,
];

export function LayerPanel(props: LayerSectionProps) {
  return (
    <div class="ins-layer-panel" data-testid="layer-panel" data-layer={props.layer} data-run={selectedRun.value ?? ""}>
      {LAYER_SECTIONS.map((Section, k) => (
        <Section key={k} run={props.run} layer={props.layer} />
      ))}
    </div>
  );
}
