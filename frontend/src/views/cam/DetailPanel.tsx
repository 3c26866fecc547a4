// The enlarged image: its tiles at a large size above the grid, with its labels, a download button
// and a close button (Escape closes it too).
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { TileColumn } from "./overlay_export";
import { selectedImage } from "./state";
import { Caption, Figure } from "./Tiles";
import { download } from "./viewer";

export function DetailPanel(props: { columns: TileColumn[]; aspect: number }) {
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
