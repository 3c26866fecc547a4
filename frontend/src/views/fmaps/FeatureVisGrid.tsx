// A layer's feature visualisations over training: per recorded channel, the input optimised to excite
// it (watch(..., featurevis_every=...)), one tile per channel labelled with its index, in the feature
// maps' column order where both were recorded, with its own step player (its steps are its own).
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { FeatureVisLayer } from "./api";
import { stepFor, visOrder } from "./math";
import { fmTileSize, loadVisStrip } from "./state";
import { useLoaded } from "./use_loaded";

/** Play shows one step every 600 ms, like the feature maps. */
const PLAY_FPS = 1000 / 600;

function VisTile(props: { strip: ImageBitmap; index: number; info: FeatureVisLayer; size: number; step: number; inMaps: boolean }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const { strip, index, info } = props;
  const channel = info.channels[index];
  useLayoutEffect(() => {
    const canvas = ref.current;
    if (!canvas) return;
    canvas.width = info.width;
    canvas.height = info.height;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, info.width, info.height);
    ctx.drawImage(strip, index * info.width, 0, info.width, info.height, 0, 0, info.width, info.height);
  }, [strip, index, info]);
  const height = Math.max(4, Math.round((props.size * info.height) / Math.max(1, info.width)));
  const label = `channel ${channel} of ${info.layer}, step ${props.step}`;
  return (
    <figure class="ins-fv-tile" data-testid="fvis-tile" data-channel={channel} data-in-maps={props.inMaps ? "1" : "0"}>
      <figcaption data-testid="fvis-label" style={{ width: props.size + "px" }}>
        ch {channel}
      </figcaption>
      <canvas ref={ref} class="ins-fv-canvas" data-step={props.step} role="img" aria-label={label} title={label} style={{ width: props.size + "px", height: height + "px" }} />
    </figure>
  );
}

export interface FeatureVisGridProps {
  run: string;
  info: FeatureVisLayer;
  /** The channels the feature maps show, in their column order (their tiles come first). */
  mapChannels: readonly number[];
}

export function FeatureVisGrid(props: FeatureVisGridProps) {
  const { run, info } = props;
  const steps = info.steps;
  const [wanted, setWanted] = useState<number | null>(null);
  const [playing, setPlaying] = useState(false);
  const shown = stepFor(steps, wanted);
  const index = shown === null ? 0 : steps.indexOf(shown);
  const strip = useLoaded<{ step: number; bitmap: ImageBitmap }>(shown === null ? null : JSON.stringify([run, info.layer, shown]), async () => ({
    step: shown ?? 0,
    bitmap: await loadVisStrip(run, info.layer, shown ?? 0),
  }));
  const order = useMemo(() => visOrder(info.channels, props.mapChannels), [info, props.mapChannels]);
  const inMaps = useMemo(() => new Set(props.mapChannels), [props.mapChannels]);
  const size = fmTileSize.value;
  const data = strip.data;
  // Play waits for the shown step's strip before moving on (read through a ref by the play loop).
  const drawn = useRef(false);
  drawn.current = !!data && data.step === shown;
  const what = info.userChannels ? "channels chosen by index" : `${info.channels.length} of ${info.numChannels} channels`;
  return (
    <div class="ins-fv" data-testid="fvis-panel" data-layer={info.layer} data-step={data?.step ?? ""} data-pending={drawn.current ? "0" : "1"}>
      <div class="ins-fm-sub">
        <b>Feature visualisation</b> of <b>{info.layer}</b> ({info.moduleType}): for each channel, the input that excites it most ({what}, {info.width}×{info.height})
      </div>
      <StepPlayer
        class="ins-cam-stepbar ins-fm-stepbar"
        steps={steps}
        index={index}
        onIndex={(i) => setWanted(steps[i] ?? null)}
        ids={{ slider: "fvis-step-slider", label: "fvis-step-label", play: "fvis-play" }}
        ariaLabel="Feature visualisation step"
        play={{ playing, onPlaying: setPlaying, fps: PLAY_FPS, ready: () => drawn.current }}
      />
      {strip.error ? <ErrorMessage title="Could not load the feature visualisations" message={strip.error} /> : null}
      {data ? (
        <div class="ins-fv-grid" data-testid="fvis-grid" data-layout={info.layout}>
          {order.map((j) => (
            <VisTile key={j} strip={data.bitmap} index={j} info={info} size={size} step={data.step} inMaps={inMaps.has(info.channels[j])} />
          ))}
        </div>
      ) : strip.error ? null : (
        <div class="ins-loading">Loading feature visualisations…</div>
      )}
    </div>
  );
}
