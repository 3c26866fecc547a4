// Feature maps of one layer over training: probe images (rows) × the layer's recorded channels
// (columns), a step slider with play, coloured in the browser (colormap, per-map or shared scale),
// a channel picker by index, token × channel or token-grid views of transformer layers, and the
// layer's filters when they were recorded. Self-contained: the Feature maps view and the layer
// panel of the model table both embed it with just a run and a layer.
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { DEFAULT_PROBE } from "../api";
import { colormapLUT } from "../colormaps";
import { describe } from "../data";
import type { FeatureMapLayer, FeatureMapLayersResponse, FilterLayer } from "../fmaps_api";
import { byteTable, cellsFor, paintCell, parseChannels, sharedRange, stepFor, storageNote, tileLut, type Cell } from "../fmaps_math";
import {
  fmChannelText,
  fmColormap,
  fmScale,
  fmTileSize,
  fmTokenView,
  loadLayers,
  loadProbe,
  loadTiles,
  MAX_FMAP_SIZE,
  MIN_FMAP_SIZE,
  type StepTiles,
} from "../fmaps_state";
import { unionSteps } from "../overlay_math";
import type { DecodedImages } from "../sprites";
import { reloadTick } from "../state";
import { ErrorMessage } from "./common";
import { ColormapSelect, Range, Select, StepSlider } from "./fields";

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

interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/** Resolve `load()` whenever `key` changes; the previous data stays until the new data arrives. */
function useLoaded<T>(key: string | null, load: () => Promise<T>): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: false });
  useEffect(() => {
    if (key === null) {
      setState({ data: null, error: null, loading: false });
      return;
    }
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (e: unknown) => live && setState((s) => ({ data: s.data, error: describe(e), loading: false })),
    );
    return () => {
      live = false;
    };
  }, [key]);
  return state;
}

function MapCanvas(props: { cell: Cell; index: number; row: number; tiles: StepTiles; h: number; w: number; luts: Uint32Array[]; size: number; label: string; step: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const { cell, row, tiles, h, w, luts } = props;
  useLayoutEffect(() => {
    const canvas = ref.current;
    const gray = tiles.gray;
    if (!canvas || !gray) return;
    if (canvas.width !== cell.width) canvas.width = cell.width;
    if (canvas.height !== cell.height) canvas.height = cell.height;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    const image = ctx.createImageData(cell.width, cell.height);
    paintCell(cell, row, gray.data, gray.width, h, w, (c) => luts[c], new Uint32Array(image.data.buffer));
    ctx.putImageData(image, 0, 0);
  }, [cell, row, tiles, h, w, luts]);
  const aspect = cell.height / Math.max(1, cell.width);
  const width = cell.kind === "tile" && cell.height === 1 ? Math.max(props.size, Math.min(640, cell.width * 4)) : props.size;
  const height = cell.height === 1 ? 14 : Math.max(4, Math.round(width * Math.min(aspect, 8)));
  return (
    <canvas
      ref={ref}
      class="ins-fm-map"
      data-testid="fmap-cell"
      data-column={props.index}
      data-step={props.step}
      role="img"
      aria-label={props.label}
      title={props.label}
      style={{ width: width + "px", height: height + "px" }}
    />
  );
}

function ProbeThumb(props: { images: DecodedImages | null; row: number; height: number; width: number; size: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const { images, row, height, width } = props;
  useLayoutEffect(() => {
    const canvas = ref.current;
    if (!canvas || !images) return;
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d")?.drawImage(images.bitmap, 0, row * height, width, height, 0, 0, width, height);
  }, [images, row, height, width]);
  if (!images) return <span class="ins-fm-thumb ins-fm-thumb-empty" style={{ width: props.size + "px" }} />;
  return <canvas ref={ref} class="ins-fm-thumb" style={{ width: props.size + "px", height: Math.round((props.size * height) / Math.max(1, width)) + "px" }} aria-label={`probe image ${row}`} />;
}

function columnLabel(info: FeatureMapLayer, cell: Cell): string {
  if (cell.kind === "tile" || cell.kind === "grid") return info.layout === "vector" ? `all ${info.width} channels` : `ch ${info.channels[cell.column]}`;
  return cell.kind === "rows" ? "channel × position" : "token × channel";
}

/** Colour tables of one probe image's stored tiles at this step. */
function lutsFor(tiles: StepTiles, row: number, count: number, base: Uint32Array, shared: [number, number] | null): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (let c = 0; c < count; c++) out.push(tileLut(base, tiles.scales.scaleMin?.[row]?.[c], tiles.scales.scaleMax?.[row]?.[c], shared));
  return out;
}

function MapsGrid(props: { run: string; info: FeatureMapLayer; step: number; probe: string; columns: number[] }) {
  const { run, info, step, probe, columns } = props;
  const key = JSON.stringify([run, info.layer, step, probe]);
  const tiles = useLoaded<StepTiles>(key, () => loadTiles("feature_map", run, info.layer, step, false, probe));
  const thumbs = useLoaded(JSON.stringify([run, probe, reloadTick.value]), () => loadProbe(run, probe, reloadTick.peek()));
  const colormap = fmColormap.value;
  const scale = fmScale.value;
  const tokenView = fmTokenView.value;
  const size = fmTileSize.value;
  const cells = useMemo(() => cellsFor(info, columns, tokenView), [info, columns, tokenView]);
  const data = tiles.data;
  const count = Math.max(1, info.channels.length);
  const rows = useMemo(() => {
    if (!data) return [];
    const base = colormapLUT(colormap);
    const shared = scale === "shared" ? sharedRange(data.scales.scaleMin, data.scales.scaleMax, info.layout === "vector" ? [0] : columns) : null;
    return Array.from({ length: info.numImages }, (_, r) => lutsFor(data, r, count, base, shared));
  }, [data, colormap, scale, columns, info]);
  if (!data) {
    if (tiles.error) return <ErrorMessage title="Could not load the feature maps" message={tiles.error} />;
    return <div class="ins-loading">Loading feature maps…</div>;
  }
  const images = thumbs.data?.images ?? null;
  const probeInfo = thumbs.data?.info;
  return (
    <div class="ins-fm-grid" data-testid="fmap-grid" data-step={data.scales.step} data-layer={info.layer} data-pending={tiles.loading ? "1" : "0"}>
      {tiles.error ? <ErrorMessage title="Could not load this step" message={tiles.error} /> : null}
      <div class="ins-fm-row ins-fm-head">
        <span class="ins-fm-rowhead" style={{ width: size + "px" }} />
        {cells.map((cell, i) => (
          <span key={i} class="ins-fm-colhead" data-testid="fmap-colhead" style={{ width: (cell.height === 1 ? Math.max(size, Math.min(640, cell.width * 4)) : size) + "px" }}>
            {columnLabel(info, cell)}
          </span>
        ))}
      </div>
      {rows.map((luts, r) => (
        <div key={r} class="ins-fm-row" data-testid="fmap-row" data-image={r}>
          <ProbeThumb images={images} row={r} height={probeInfo?.height ?? 1} width={probeInfo?.width ?? 1} size={size} />
          {cells.map((cell, i) => (
            <MapCanvas key={i} index={i} cell={cell} row={r} tiles={data} h={info.height} w={info.width} luts={luts} size={size} step={data.scales.step} label={`image ${r}, ${columnLabel(info, cell)}, step ${data.scales.step}`} />
          ))}
        </div>
      ))}
    </div>
  );
}

function FiltersGrid(props: { run: string; info: FilterLayer; step: number }) {
  const { run, info, step } = props;
  const rgb = info.layout === "rgb";
  const tiles = useLoaded<StepTiles>(JSON.stringify([run, info.layer, step, "filters"]), () => loadTiles("filter", run, info.layer, step, rgb));
  const ref = useRef<HTMLCanvasElement>(null);
  const colormap = fmColormap.value;
  const scale = fmScale.value;
  const rows = info.filters.length;
  const cols = rgb ? 1 : Math.max(1, info.inputChannels.length);
  // RGB filters tile into a square-ish grid; grayscale ones are filters (rows) × input channels.
  const across = rgb ? Math.ceil(Math.sqrt(rows)) : cols;
  const down = rgb ? Math.ceil(rows / across) : rows;
  const kh = info.height;
  const kw = info.width;
  const W = across * (kw + 1) - 1;
  const H = down * (kh + 1) - 1;
  const px = Math.max(2, Math.min(12, Math.floor(36 / Math.max(kh, kw))));
  const data = tiles.data;
  useLayoutEffect(() => {
    const canvas = ref.current;
    if (!canvas || !data) return;
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    const image = ctx.createImageData(W, H);
    const out = new Uint32Array(image.data.buffer);
    const s = data.scales;
    const shared = scale === "shared" ? sharedRange(s.scaleMin, s.scaleMax, Array.from({ length: cols }, (_, i) => i)) : null;
    const base = colormapLUT(colormap);
    const lut = new Uint32Array(256);
    for (let f = 0; f < rows; f++) {
      for (let c = 0; c < cols; c++) {
        const x0 = rgb ? (f % across) * (kw + 1) : c * (kw + 1);
        const y0 = rgb ? Math.floor(f / across) * (kh + 1) : f * (kh + 1);
        const lo = s.scaleMin?.[f]?.[c];
        const hi = s.scaleMax?.[f]?.[c];
        if (rgb && data.rgb) {
          const table = byteTable(lo, hi, shared);
          const src = data.rgb.rgba;
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) {
              const i = ((f * kh + y) * data.rgb.width + x) * 4;
              const o = ((y0 + y) * W + x0 + x) * 4;
              image.data[o] = table[src[i]];
              image.data[o + 1] = table[src[i + 1]];
              image.data[o + 2] = table[src[i + 2]];
              image.data[o + 3] = 255;
            }
          }
        } else if (data.gray) {
          tileLut(base, lo, hi, shared, lut);
          for (let y = 0; y < kh; y++) {
            for (let x = 0; x < kw; x++) out[(y0 + y) * W + x0 + x] = lut[data.gray.data[(f * kh + y) * data.gray.width + c * kw + x]];
          }
        }
      }
    }
    ctx.putImageData(image, 0, 0);
  }, [data, colormap, scale, W, H]);
  return (
    <div class="ins-fm-filters" data-testid="filters-grid" data-step={data?.scales.step ?? ""} data-layout={info.layout}>
      <div class="ins-fm-sub">
        Filters of <b>{info.layer}</b> ({info.moduleType} {info.shape.join("×")}):{" "}
        {rgb ? `${rows} RGB kernels` : `${rows} filters × ${cols} input channels`}
        {info.numFilters > rows ? ` (first ${rows} of ${info.numFilters})` : ""}
        {data && data.scales.step !== step ? ` · step ${data.scales.step}` : ""}
      </div>
      {tiles.error ? <ErrorMessage title="Could not load the filters" message={tiles.error} /> : null}
      {data ? <canvas ref={ref} class="ins-fm-filter-canvas" role="img" aria-label={`filters of ${info.layer}`} style={{ width: W * px + "px", height: H * px + "px" }} /> : <div class="ins-loading">Loading filters…</div>}
    </div>
  );
}

/** A toolbar control: its label text, then the control. */
function Control(props: { label: string; children: ComponentChildren }) {
  return (
    <label class="ins-fm-control">
      {props.label}
      {props.children}
    </label>
  );
}

function Toolbar(props: { info: FeatureMapLayer | null; steps: number[]; index: number; onStep: (i: number) => void; playing: boolean; onPlay: () => void }) {
  const { info, steps, index } = props;
  const layer = info?.layer ?? "";
  const text = fmChannelText.value[layer] ?? "";
  const picked = info ? parseChannels(text, info.channels) : null;
  return (
    <div class="ins-fm-toolbar">
      <div class="ins-cam-stepbar ins-fm-stepbar">
        <button type="button" class="ins-btn ins-play" data-testid="fmap-play" aria-pressed={props.playing} disabled={steps.length < 2} onClick={props.onPlay}>
          {props.playing ? "❚❚ Pause" : "▶ Play"}
        </button>
        <StepSlider testid="fmap-step-slider" steps={steps} index={index} ariaLabel="Training step" onIndex={props.onStep} />
        <span class="ins-cam-step" data-testid="fmap-step-label">
          step <b>{steps[index]}</b>
        </span>
        <span class="ins-muted ins-cam-count">
          {index + 1} / {steps.length}
        </span>
      </div>
      <div class="ins-fm-controls">
        <Control label="Colormap">
          <ColormapSelect
            testid="fmap-colormap"
            value={fmColormap.value}
            onChange={(c) => {
              fmColormap.value = c;
            }}
          />
        </Control>
        <Control label="Scale">
          <Select
            testid="fmap-scale"
            value={fmScale.value}
            options={[
              { value: "map", label: "per map" },
              { value: "shared", label: "shared across the grid" },
            ]}
            onChange={(v) => {
              fmScale.value = v === "shared" ? "shared" : "map";
            }}
          />
        </Control>
        {info?.layout === "tokens" && info.gridSide > 0 ? (
          <Control label="Tokens">
            <Select
              testid="fmap-token-view"
              value={fmTokenView.value}
              options={[
                { value: "tokens", label: "token × channel" },
                { value: "grid", label: `${info.gridSide}×${info.gridSide} grid${info.classTokens ? " (without the class token)" : ""}` },
              ]}
              onChange={(v) => {
                fmTokenView.value = v === "grid" ? "grid" : "tokens";
              }}
            />
          </Control>
        ) : null}
        <Control label="Size">
          <Range
            testid="fmap-size"
            min={MIN_FMAP_SIZE}
            max={MAX_FMAP_SIZE}
            step={8}
            value={fmTileSize.value}
            onInput={(v) => {
              fmTileSize.value = v;
            }}
          />
        </Control>
        {info && info.channels.length ? (
          <label class="ins-fm-control ins-fm-channels">
            Channels
            <input
              type="text"
              class="ins-input"
              data-testid="fmap-channels"
              placeholder={`all recorded (${info.channels.length})`}
              value={text}
              spellcheck={false}
              onChange={(e) => {
                fmChannelText.value = { ...fmChannelText.peek(), [layer]: (e.currentTarget as HTMLInputElement).value };
              }}
            />
          </label>
        ) : null}
      </div>
      {picked?.error ? (
        <div class="ins-hint ins-hint-flat ins-fm-warn" role="alert" data-testid="fmap-channels-error">
          {picked.error}
        </div>
      ) : null}
    </div>
  );
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
  const list = useLoaded<FeatureMapLayersResponse>(JSON.stringify([run, reload]), () => loadLayers(run, reload));
  const data = list.data && list.data.run === run ? list.data : null;
  const info = data?.featureMaps.find((l) => l.layer === layer && l.probe === probe) ?? null;
  const filters = props.showFilters === false ? null : (data?.filters.find((l) => l.layer === layer) ?? null);
  const steps = useMemo(() => unionSteps([info?.steps ?? [], filters?.steps ?? []]), [info, filters]);
  const [wanted, setWanted] = useState<number | null>(props.initialStep ?? null);
  const [playing, setPlaying] = useState(false);
  const shown = stepFor(steps, wanted);
  const index = shown === null ? 0 : steps.indexOf(shown);
  const text = info ? (fmChannelText.value[info.layer] ?? "") : "";
  const columns = useMemo(() => (info ? parseChannels(text, info.channels).columns : []), [info, text]);

  useEffect(() => {
    if (!playing || steps.length < 2) return;
    const timer = setInterval(() => {
      setWanted((w) => {
        const i = steps.indexOf(stepFor(steps, w) ?? steps[0]);
        return steps[(i + 1) % steps.length];
      });
    }, 600);
    return () => clearInterval(timer);
  }, [playing, steps]);

  if (!data) {
    if (list.error) return <ErrorMessage title="Could not load the feature maps" message={list.error} />;
    return <div class="ins-loading">Loading feature maps…</div>;
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
      <Toolbar info={info} steps={steps} index={index} onStep={(i) => setWanted(steps[i] ?? null)} playing={playing} onPlay={() => setPlaying((p) => !p)} />
      {info ? (
        <div class="ins-fm-sub">
          {describeLayer(info)}
          <StorageNote info={info} />
        </div>
      ) : null}
      {info && shown !== null ? <MapsGrid run={run} info={info} step={stepFor(info.steps, shown) ?? shown} probe={probe} columns={columns} /> : null}
      {filters && shown !== null ? <FiltersGrid run={run} info={filters} step={stepFor(filters.steps, shown) ?? shown} /> : null}
    </div>
  );
}
