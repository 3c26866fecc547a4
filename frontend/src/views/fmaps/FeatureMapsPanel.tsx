// Feature maps of one layer over training: probe images (rows) × the layer's recorded channels
// (columns), a step slider with play, coloured in the browser (colormap, per-map or shared scale),
// a channel picker by index, token × channel or token-grid views of transformer layers, and the
// layer's filters and feature visualisations when they were recorded. Self-contained: the Feature maps view and the layer
// panel of the model table both embed it with just a run and a layer.
import { useMemo, useState } from "preact/hooks";
import { DEFAULT_PROBE } from "../../core/api";
import { reloadTick } from "../../core/state";
import { unionSteps } from "../../lib/steps";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { FeatureMapLayer } from "./api";
import { FeatureVisGrid } from "./FeatureVisGrid";
import { FiltersGrid } from "./FiltersGrid";
import { MapsGrid } from "./MapsGrid";
import { parseChannels, stepFor, storageNote } from "./math";
import { fmChannelText, loadLayers, type RunTileLayers } from "./state";
import { Toolbar } from "./Toolbar";
import { useLoaded } from "./use_loaded";

export interface FeatureMapsPanelProps {
  run: string;
  layer: string;
  /** The probe whose maps are shown (default "probe", watch()'s). */
  probe?: string;
  /** Show the layer's filters when recorded (default true). */
  showFilters?: boolean;
  /** A step to start at (default: the last recorded one). */
  initialStep?: number | null;
}

function StorageNote(props: { info: FeatureMapLayer }) {
  const note = storageNote(props.info);
  if (!note.text) return null;
  return (
    <span class="ins-muted" data-testid="fmap-storage" title={note.title}>
      {" · "}
      {note.text}
    </span>
  );
}

function describeLayer(info: FeatureMapLayer): string {
  const chosen = info.userChannels ? "channels chosen by index" : `the ${info.channels.length} most active of ${info.numChannels} channels (chosen at step ${info.steps[0]})`;
  switch (info.layout) {
    case "vector":
      return `all ${info.width} outputs as one strip per image`;
    case "sequence":
      return `channel × position (length ${info.width}): ${chosen}`;
    case "tokens":
      return `${info.width} tokens × channel: ${chosen}`;
    case "volume":
      return `depth slice ${info.depthIndex}: ${chosen}`;
    default:
      return chosen;
  }
}

export function FeatureMapsPanel(props: FeatureMapsPanelProps) {
  const { run, layer } = props;
  const probe = props.probe ?? DEFAULT_PROBE;
  const reload = reloadTick.value;
  const list = useLoaded<RunTileLayers>(JSON.stringify([run, reload]), () => loadLayers(run, reload));
  const data = list.data && list.data.run === run ? list.data : null;
  const info = data?.featureMaps.find((l) => l.layer === layer && l.probe === probe) ?? null;
  const filters = props.showFilters === false ? null : (data?.filters.find((l) => l.layer === layer) ?? null);
  const vis = data?.featureVis.find((l) => l.layer === layer) ?? null;
  const steps = useMemo(() => unionSteps([info?.steps ?? [], filters?.steps ?? []]), [info, filters]);
  const [wanted, setWanted] = useState<number | null>(props.initialStep ?? null);
  const [playing, setPlaying] = useState(false);
  const shown = stepFor(steps, wanted);
  const index = shown === null ? 0 : steps.indexOf(shown);
  const text = info ? (fmChannelText.value[info.layer] ?? "") : "";
  const columns = useMemo(() => (info ? parseChannels(text, info.channels).columns : []), [info, text]);
  const mapChannels = useMemo(() => (info ? columns.map((c) => info.channels[c]) : []), [info, columns]);

  if (!data) {
    if (list.error) return <ErrorMessage title="Could not load the feature maps" message={list.error} />;
    return <div class="ins-loading">Loading feature maps…</div>;
  }
  if (!info && !filters && vis) {
    return (
      <div class="ins-fm-panel" data-testid="fmap-panel" data-layer={layer}>
        <FeatureVisGrid run={run} info={vis} mapChannels={[]} />
      </div>
    );
  }
  if (!info && !filters) {
    return (
      <div class="ins-muted" data-testid="fmap-none">
        No feature maps or filters of layer <b>{layer}</b> in run <b>{run}</b>. Feature maps need a probe batch, and by default only the last layer of each stage has them (choose
        layers with <code>maps_layers=[...]</code>):{" "}
        <code>writer.watch(model, probe=images, maps_every=100)</code>.
      </div>
    );
  }
  return (
    <div class="ins-fm-panel" data-testid="fmap-panel" data-layer={layer}>
      <Toolbar info={info} steps={steps} index={index} onStep={(i) => setWanted(steps[i] ?? null)} playing={playing} onPlaying={setPlaying} />
      {info ? (
        <div class="ins-fm-sub">
          {describeLayer(info)}
          <StorageNote info={info} />
        </div>
      ) : null}
      {info && shown !== null ? (
        <div class="ins-fm-side">
          <MapsGrid run={run} info={info} step={stepFor(info.steps, shown) ?? shown} probe={probe} columns={columns} />
          {vis ? <FeatureVisGrid run={run} info={vis} mapChannels={mapChannels} /> : null}
        </div>
      ) : vis ? (
        <FeatureVisGrid run={run} info={vis} mapChannels={[]} />
      ) : null}
      {filters && shown !== null ? <FiltersGrid run={run} info={filters} step={stepFor(filters.steps, shown) ?? shown} /> : null}
    </div>
  );
}
