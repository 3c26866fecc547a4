// One cell of the grid: an image's tiles side by side (click to enlarge), its labels and a download button.
import type { TileColumn } from "./overlay_export";
import { selectedImage } from "./state";
import { Caption, Figure } from "./Tiles";
import { download } from "./viewer";

function DownloadIcon() {
  return (
    <svg width="16" height="16" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path fill="currentColor" d="M5 20h14v-2H5v2zm14-9h-4V3H9v8H5l7 7 7-7z" />
    </svg>
  );
}

export function Cell(props: { image: number; columns: TileColumn[]; size: number; aspect: number }) {
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
