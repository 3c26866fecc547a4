// The feature maps of one layer at one step: probe images (rows) × the chosen channels (columns),
// each stored 8-bit tile coloured through its own table (per-map or shared scale).
import { useLayoutEffect, useMemo, useRef } from "preact/hooks";
import type { DecodedImages } from "../../core/sprites";
import { reloadTick } from "../../core/state";
import { colormapLUT } from "../../lib/colormaps";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { FeatureMapLayer } from "./api";
import { cellsFor, paintCell, sharedRange, tileLut, type Cell } from "./math";
import { fmColormap, fmScale, fmTileSize, fmTokenView, loadProbe, loadTiles, type StepTiles } from "./state";
import { useLoaded } from "./use_loaded";

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

export function MapsGrid(props: { run: string; info: FeatureMapLayer; step: number; probe: string; columns: number[] }) {
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
