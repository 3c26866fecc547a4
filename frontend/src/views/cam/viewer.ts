// What the overlay viewer's components share: the display settings the engine paints with, the
// grid's layout key, the engine's status, the playback speed, the engine itself (through a context,
// and for the download buttons) and the PNG downloads.
import { computed, signal } from "@preact/signals";
import { createContext } from "preact";
import { darkMode } from "../../core/state";
import { OverlayEngine, type EngineStatus, type Settings } from "./overlay_engine";
import { composeGrid, composeImage, downloadCanvas, safeFileName } from "./overlay_export";
import { camColormap, camKind, camLayer, camNorm, camOpacity, camThreshold, DEFAULT_FPS, frameModel } from "./state";

export const settings = computed<Settings>(() => ({
  colormap: camColormap.value,
  opacity: camOpacity.value,
  threshold: camThreshold.value,
  norm: camNorm.value,
}));

/** Changes only when the grid's layout changes (not per step). */
export const structureKey = computed(() => {
  const m = frameModel.value;
  if (!m) return null;
  return JSON.stringify([m.numImages, m.methods, m.slots.map((s) => s.run), m.slots[0].height, m.slots[0].width]);
});

export const engineStatus = signal<EngineStatus>({ pending: false, error: null });
/** Playback speed of the step player (steps per second). */
export const fps = signal(DEFAULT_FPS);

export const EngineContext = createContext<OverlayEngine | null>(null);

let currentEngine: OverlayEngine | null = null;

/** The engine of the mounted viewer (null when none is). */
export function activeEngine(): OverlayEngine | null {
  return currentEngine;
}

export function setActiveEngine(engine: OverlayEngine | null): void {
  currentEngine = engine;
}

/** Download one image's tiles, or the whole grid, as a PNG. */
export function download(kind: "image" | "grid", image = 0): void {
  const engine = currentEngine;
  const m = frameModel.peek();
  if (!engine || !m) return;
  const canvas = kind === "grid" ? composeGrid(engine, m, settings.peek(), darkMode.peek()) : composeImage(engine, m, settings.peek(), image, darkMode.peek());
  if (!canvas) return;
  const parts = [m.slots[0].run, camLayer.peek() || camKind.peek(), m.methods.join("+"), `step${m.step ?? 0}`];
  if (kind === "image") parts.push(`img${image}`);
  void downloadCanvas(canvas, safeFileName(parts.join("-")) + ".png");
}
