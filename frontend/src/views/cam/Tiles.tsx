// One probe image's tiles: the canvas the engine paints (Tile), its column header (Figure), and the
// labels under the image (Caption: the true class and each run's prediction at the shown step).
import { useContext, useLayoutEffect, useRef } from "preact/hooks";
import type { TileColumn } from "./overlay_export";
import { className, frameModel, predictionAt } from "./state";
import { EngineContext } from "./viewer";
import { methodLabel } from "./labels";

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
export function Figure(props: { column: TileColumn; image: number; size: number; aspect: number; big?: boolean }) {
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
  const title = methodLabel(column.method) + (compare && slot ? ` · ${slot.run}` : "") + (note ? ` (${note})` : "");
  return (
    <figure class="ins-cam-fig" style={{ width: size + "px" }}>
      {props.big || (m && (m.methods.length > 1 || compare)) ? (
        <figcaption class="ins-cam-head" title={title}>
          <span class="ins-cam-head-name">{methodLabel(column.method)}</span>
          {compare ? <span class={"ins-cam-tag slot" + column.slot}>{column.slot === 0 ? "A" : "B"}</span> : null}
          {note ? <span class={"ins-cam-head-note" + cls}>{note}</span> : null}
        </figcaption>
      ) : null}
      <Tile slot={column.slot} method={column.method} image={image} size={size} aspect={props.aspect} title={`${title}, image ${image}`} />
    </figure>
  );
}

export function Caption(props: { image: number; compact?: boolean }) {
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
