// The overlay viewer: class-activation maps (and saliency maps) over the probe images, one tile per
// image × method (× comparison run), a step slider with play/pause, labels and predictions under
// each image, an enlarged detail panel, and PNG downloads. Pixels are painted by OverlayEngine;
// the component tree re-renders only when the grid's structure changes, and per step only the
// small components that show step-dependent text.
import { computed, signal } from "@preact/signals";
import { createContext } from "preact";
import { useContext, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { colormapRGB } from "../colormaps";
import {
  camColormap,
  camKind,
  camLayer,
  camNorm,
  camOpacity,
  camStep,
  camThreshold,
  camTileSize,
  className,
  compareRun,
  DEFAULT_FPS,
  frameModel,
  mapsA,
  playing,
  predictionAt,
  probeA,
  runSeries,
  selectedImage,
  sliderIndex,
  sliderSteps,
  type FrameModel,
} from "../cam_state";
import { darkMode, selectedRun } from "../state";
import { OverlayEngine, type EngineStatus, type Settings } from "../widgets/overlay_engine";
import { composeGrid, composeImage, downloadCanvas, safeFileName, tileColumns, type TileColumn } from "../widgets/overlay_export";
import { ErrorMessage } from "./common";

const settings = computed<Settings>(() => ({
  colormap: camColormap.value,
  opacity: camOpacity.value,
  threshold: camThreshold.value,
  norm: camNorm.value,
}));

/** Changes only when the grid's layout changes (not per step). */
const structureKey = computed(() => {
  const m = frameModel.value;
  if (!m) return null;
  return JSON.stringify([m.numImages, m.methods, m.slots.map((s) => s.run), m.slots[0].height, m.slots[0].width]);
});

const engineStatus = signal<EngineStatus>({ pending: false, error: null });
const fps = signal(DEFAULT_FPS);

const EngineContext = createContext<OverlayEngine | null>(null);

function Tile(props: { slot: number; method: string; image: number; size: number; aspect: number; title: string }) {
  const engine = useContext(EngineContext);
  const ref = useRef<HTMLCanvasElement>(null);
  const { slot, method, image, size } = props;
  useLayoutEffect(() => {
    const canvas = ref.current;
    if (!engine || !canvas) return;
    const tile = { canvas, slot, method, image, size };
    engine.register(tile);
    return () => engine.unregister(tile);
  }, [engine, slot, method, image, size]);
  return (
    <canvas
      ref={ref}
      class="ins-cam-tile"
      data-testid="overlay-tile"
      data-image={image}
      data-slot={slot}
      data-method={method}
      role="img"
      aria-label={props.title}
      style={{ width: size + "px", height: Math.max(1, Math.round(size * props.aspect)) + "px" }}
    />
  );
}

/** A tile with its column header: the method, and for a comparison the run (A/B) and the step shown. */
function Figure(props: { column: TileColumn; image: number; size: number; aspect: number; big?: boolean }) {
  const m = frameModel.value;
  const { column, image, size } = props;
  const compare = (m?.slots.length ?? 1) > 1;
  const slot = m?.slots[column.slot];
  const src = slot?.sources.find((s) => s.method === column.method);
  let note: string | null = null;
  let cls = "";
  if (m && column.slot > 0) {
    if (!src?.series) {
      note = "not recorded";
      cls = " missing";
    } else if (src.step === null) {
      note = "no map yet";
      cls = " missing";
    } else if (src.step !== m.step) {
      note = `step ${src.step}`;
      cls = " earlier";
    }
  }
  const title = column.method + (compare && slot ? ` · ${slot.run}` : "") + (note ? ` (${note})` : "");
  return (
    <figure class="ins-cam-fig" style={{ width: size + "px" }}>
      {props.big || (m && (m.methods.length > 1 || compare)) ? (
        <figcaption class="ins-cam-head" title={title}>
          <span class="ins-cam-head-name">{column.method}</span>
          {compare ? <span class={"ins-cam-tag slot" + column.slot}>{column.slot === 0 ? "A" : "B"}</span> : null}
          {note ? <span class={"ins-cam-head-note" + cls}>{note}</span> : null}
        </figcaption>
      ) : null}
      <Tile slot={column.slot} method={column.method} image={image} size={size} aspect={props.aspect} title={`${title}, image ${image}`} />
    </figure>
  );
}

function Caption(props: { image: number; compact?: boolean }) {
  const m = frameModel.value;
  if (!m) return null;
  const i = props.image;
  const label = m.labels?.[i];
  const hasLabel = typeof label === "number";
  return (
    <div class="ins-cam-caption" data-testid="overlay-caption">
      {hasLabel ? (
        <div class="ins-cam-true" data-testid="true-label">
          <span class="k">true</span> {className(m.classNames, label)}
        </div>
      ) : null}
      {m.slots.map((slot, s) => {
        const p = predictionAt(slot.predictions, slot.sources[0]?.step ?? m.step, i);
        if (!p) return null;
        const ok = hasLabel ? p.cls === label : null;
        return (
          <div
            key={s}
            class={"ins-cam-pred" + (ok === null ? "" : ok ? " ok" : " wrong")}
            data-testid="pred-label"
            data-correct={ok === null ? "" : String(ok)}
            title={m.slots.length > 1 ? slot.run : undefined}
          >
            <span class="k">pred</span>
            {m.slots.length > 1 ? <span class={"ins-cam-tag slot" + s}>{s === 0 ? "A" : "B"}</span> : null}{" "}
            {className(m.classNames, p.cls)}
            {p.probability !== null ? <span class="p"> {(p.probability * 100).toFixed(0)}%</span> : null}
          </div>
        );
      })}
    </div>
  );
}

function download(kind: "image" | "grid", image = 0): void {
  const engine = currentEngine;
  const m = frameModel.peek();
  if (!engine || !m) return;
  const canvas = kind === "grid" ? composeGrid(engine, m, settings.peek(), darkMode.peek()) : composeImage(engine, m, settings.peek(), image, darkMode.peek());
  if (!canvas) return;
  const parts = [m.slots[0].run, camLayer.peek() || camKind.peek(), m.methods.join("+"), `step${m.step ?? 0}`];
  if (kind === "image") parts.push(`img${image}`);
  void downloadCanvas(canvas, safeFileName(parts.join("-")) + ".png");
}

let currentEngine: OverlayEngine | null = null;

function DownloadIcon() {
  return (
    <svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M5 20h14v-2H5v2zm14-9h-4V3H9v8H5l7 7 7-7z" />
    </svg>
  );
}

function Cell(props: { image: number; columns: TileColumn[]; size: number; aspect: number }) {
  const { image, columns, size, aspect } = props;
  const open = () => {
    selectedImage.value = selectedImage.peek() === image ? null : image;
  };
  return (
    <div
      class={"ins-cam-cell" + (selectedImage.value === image ? " selected" : "")}
      data-testid="overlay-cell"
      data-image={image}
    >
      <div
        class="ins-cam-tiles"
        role="button"
        tabIndex={0}
        aria-label={`Image ${image}: enlarge`}
        title="Click to enlarge"
        onClick={open}
        onKeyDown={(e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            open();
          }
        }}
      >
        {columns.map((c) => (
          <Figure key={c.slot + ":" + c.method} column={c} image={image} size={size} aspect={aspect} />
        ))}
      </div>
      <div class="ins-cam-foot">
        <Caption image={image} />
        <button
          type="button"
          class="ins-icon-btn"
          data-testid="download-image"
          title="Download this image's overlay as PNG"
          aria-label={`Download image ${image} as PNG`}
          onClick={() => download("image", image)}
        >
          <DownloadIcon />
        </button>
      </div>
    </div>
  );
}

function DetailPanel(props: { columns: TileColumn[]; aspect: number }) {
  const image = selectedImage.value;
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    setWidth(el.clientWidth);
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    return () => ro.disconnect();
  }, [image === null]);
  // Bring the panel into view when an image is opened from further down the grid; Escape closes it.
  useEffect(() => {
    if (image === null) return;
    ref.current?.scrollIntoView?.({ block: "nearest" });
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") selectedImage.value = null;
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [image]);
  if (image === null) return null;
  const cols = props.columns.length;
  const gap = 8;
  const avail = width > 0 ? width - 26 : 900;
  let perRow = cols;
  let size = Math.floor((avail - (perRow - 1) * gap) / perRow);
  if (size < 200) {
    perRow = Math.max(1, Math.min(cols, Math.floor((avail + gap) / (200 + gap))));
    size = Math.floor((avail - (perRow - 1) * gap) / perRow);
  }
  size = Math.max(96, Math.min(448, size, Math.round(448 / Math.max(0.25, props.aspect))));
  return (
    <div class="ins-cam-detail" data-testid="overlay-detail" data-image={image} ref={ref}>
      <div class="ins-cam-detail-head">
        <span class="ins-card-title">Image {image}</span>
        <Caption image={image} />
        <span class="ins-spacer" />
        <button type="button" class="ins-btn" data-testid="download-detail" onClick={() => download("image", image)}>
          Download PNG
        </button>
        <button
          type="button"
          class="ins-btn"
          data-testid="detail-close"
          aria-label="Close the enlarged image"
          onClick={() => {
            selectedImage.value = null;
          }}
        >
          Close
        </button>
      </div>
      <div class="ins-cam-tiles ins-cam-detail-tiles">
        {props.columns.map((c) => (
          <Figure key={c.slot + ":" + c.method} column={c} image={image} size={size} aspect={props.aspect} big />
        ))}
      </div>
    </div>
  );
}

function StepBar() {
  const steps = sliderSteps.value;
  const index = sliderIndex.value;
  const isPlaying = playing.value;
  const pendingIndex = useRef<number | null>(null);
  const raf = useRef(0);
  const status = engineStatus.value;

  useEffect(() => () => cancelAnimationFrame(raf.current), []);

  // Play: advance one recorded step per tick once the current frame is drawn (loops at the end).
  useEffect(() => {
    if (!isPlaying) return;
    let waited = 0;
    const timer = setInterval(() => {
      const m = frameModel.peek();
      const list = sliderSteps.peek();
      if (!m || list.length < 2) {
        playing.value = false;
        return;
      }
      const drawn = currentEngine?.drawnStep === m.step;
      if (!drawn && waited < 8) {
        waited++;
        return;
      }
      waited = 0;
      camStep.value = list[(sliderIndex.peek() + 1) % list.length];
    }, 1000 / fps.value);
    return () => clearInterval(timer);
  }, [isPlaying, fps.value]);

  if (!steps.length) return null;
  const show = (i: number) => {
    const list = sliderSteps.peek();
    if (i >= 0 && i < list.length) camStep.value = list[i];
  };
  const onInput = (e: Event) => {
    const i = Number((e.currentTarget as HTMLInputElement).value);
    if (raf.current) {
      pendingIndex.current = i; // more input in this frame: only its last position is drawn
      return;
    }
    // The first input of a frame is shown at once (the engine draws it on the next frame); later
    // ones until then are coalesced into one update per animation frame.
    show(i);
    raf.current = requestAnimationFrame(() => {
      raf.current = 0;
      const next = pendingIndex.current;
      pendingIndex.current = null;
      if (next !== null) show(next);
    });
  };
  return (
    <div class="ins-cam-stepbar">
      <button
        type="button"
        class="ins-btn ins-play"
        data-testid="play-button"
        aria-pressed={isPlaying}
        disabled={steps.length < 2}
        title={isPlaying ? "Pause" : "Play the maps over training steps"}
        onClick={() => {
          playing.value = !playing.peek();
        }}
      >
        {isPlaying ? "❚❚ Pause" : "▶ Play"}
      </button>
      <input
        type="range"
        class="ins-range ins-cam-slider"
        data-testid="step-slider"
        min={0}
        max={Math.max(0, steps.length - 1)}
        step={1}
        value={index}
        aria-label="Training step"
        aria-valuetext={`step ${steps[index]}`}
        onInput={onInput}
      />
      <span class="ins-cam-step" data-testid="step-label">
        step <b>{steps[index]}</b>
      </span>
      <span class="ins-muted ins-cam-count">
        {index + 1} / {steps.length}
      </span>
      <select
        class="ins-select ins-fps"
        aria-label="Playback speed"
        data-testid="fps-select"
        value={String(fps.value)}
        onChange={(e) => {
          fps.value = Number((e.currentTarget as HTMLSelectElement).value) || DEFAULT_FPS;
        }}
      >
        {[1, 2, 4, 8, 15].map((f) => (
          <option key={f} value={String(f)}>
            {f} fps
          </option>
        ))}
      </select>
      {status.pending ? <span class="ins-loading">Loading…</span> : null}
      {status.error ? (
        <span class="ins-cam-err" role="alert" title={status.error}>
          {status.error}
        </span>
      ) : null}
    </div>
  );
}

function MapLegend() {
  const ref = useRef<HTMLCanvasElement>(null);
  const cmap = camColormap.value;
  const threshold = camThreshold.value;
  useLayoutEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext("2d");
    if (!c || !ctx) return;
    const rgb = colormapRGB(cmap);
    const img = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      const hidden = i < threshold * 255;
      img.data[i * 4] = rgb[i * 3];
      img.data[i * 4 + 1] = rgb[i * 3 + 1];
      img.data[i * 4 + 2] = rgb[i * 3 + 2];
      img.data[i * 4 + 3] = hidden ? 40 : 255;
    }
    ctx.putImageData(img, 0, 0);
  }, [cmap, threshold]);
  const shared = camNorm.value === "shared";
  return (
    <div
      class="ins-legend"
      data-testid="cam-legend"
      title={shared ? "All images of the step on one scale" : "Each map is scaled to its own maximum"}
    >
      <span class="ins-legend-val">low</span>
      <canvas ref={ref} width={256} height={1} />
      <span class="ins-legend-val">high</span>
    </div>
  );
}

function CamEmpty(props: { run: string }) {
  return (
    <div class="ins-empty ins-cam-empty" data-testid="cam-empty">
      <h2>No class-activation or saliency maps in this run</h2>
      <p>
        Run <b>{props.run}</b> has no maps. Give <code>watch</code> a fixed batch of images to explain (the probe), and
        Insight records where the model looks every <code>cam_every</code> steps:
      </p>
      <pre>
        {`from tb_plugin_insight import InsightWriter

writer = InsightWriter("runs/my_experiment")
images, labels = next(iter(val_loader))        # a fixed batch, e.g. 16 images
writer.watch(model, probe=(images[:16], labels[:16]), cam_every=100,
             class_names=["cat", "dog", ...])   # optional
for step, (x, y) in enumerate(loader):
    ...                                          # train as usual
writer.close()`}
      </pre>
      <p class="ins-muted">
        The first maps are recorded at step 0, then every <code>cam_every</code> steps. Maps written while TensorBoard
        runs appear on the next reload.
      </p>
    </div>
  );
}

function Grid(props: { model: FrameModel }) {
  const engine = useContext(EngineContext);
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const { model } = props;
  const columns = tileColumns(model);
  const aspect = model.slots[0].height / Math.max(1, model.slots[0].width);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!engine || !el) return;
    engine.grid = el;
    engine.requestDraw();
    setWidth(el.clientWidth);
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    return () => {
      ro.disconnect();
      if (engine.grid === el) engine.grid = null;
    };
  }, [engine]);
  // The chosen size, shrunk so that one image's tiles fit the width.
  const fit = width > 0 ? Math.floor((width - 6 - (columns.length - 1) * 6) / columns.length) : Infinity;
  const size = Math.max(48, Math.min(camTileSize.value, fit));
  const cells = [];
  for (let i = 0; i < model.numImages; i++) cells.push(<Cell key={i} image={i} columns={columns} size={size} aspect={aspect} />);
  return (
    <>
      <DetailPanel columns={columns} aspect={aspect} />
      <div
        class="ins-cam-grid"
        ref={ref}
        data-testid="overlay-grid"
        data-images={model.numImages}
        data-tiles={columns.length}
        data-run={model.slots[0].run}
      >
        {cells}
      </div>
    </>
  );
}

export function CamView() {
  const [engine, setEngine] = useState<OverlayEngine | null>(null);
  useEffect(() => {
    const e = new OverlayEngine(frameModel, settings, playing, (s) => {
      const prev = engineStatus.peek();
      if (prev.pending !== s.pending || prev.error !== s.error) engineStatus.value = s;
    });
    currentEngine = e;
    setEngine(e);
    return () => {
      e.dispose();
      if (currentEngine === e) currentEngine = null;
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
            <span class="ins-card-sub">
              {compare ? `A: ${run} · B: ${compare}` : run}
              {kind === "cam" && layer ? ` · ${layer}` : ""}
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
        {model ? <StepBar /> : null}
        {body}
      </section>
    </EngineContext.Provider>
  );
}

