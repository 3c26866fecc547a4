// The grid of cells, one per probe image (tiles sized to fit the width), with the enlarged image above it.
import { useContext, useLayoutEffect, useRef, useState } from "preact/hooks";
import { Cell } from "./Cell";
import { DetailPanel } from "./DetailPanel";
import { tileColumns } from "./overlay_export";
import { camTileSize, type FrameModel } from "./state";
import { EngineContext } from "./viewer";

export function Grid(props: { model: FrameModel }) {
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
