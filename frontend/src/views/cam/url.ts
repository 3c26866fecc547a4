// The overlay viewer's part of a deep link (keys `cam.*`).
import { DEFAULT_PROBE } from "../../core/api";
import { isColormapName } from "../../lib/colormaps";
import { numberParam as num, type ViewUrlState } from "../../lib/urlstate";
import {
  camColormap,
  camKind,
  camLayer,
  camMethods,
  camNorm,
  camOpacity,
  camProbe,
  camStep,
  camThreshold,
  camTileSize,
  compareRun,
  currentStep,
  DEFAULT_CAM_COLORMAP,
  DEFAULT_OPACITY,
  DEFAULT_THRESHOLD,
  DEFAULT_TILE_SIZE,
  isMapKind,
  MAX_TILE_SIZE,
  MIN_TILE_SIZE,
  selectedImage,
} from "./state";

function apply(url: Record<string, string>): void {
  const kind = url["cam.kind"];
  if (isMapKind(kind)) camKind.value = kind;
  if (url["cam.probe"]) camProbe.value = url["cam.probe"];
  if (url["cam.layer"] !== undefined) camLayer.value = url["cam.layer"];
  if (url["cam.methods"]) camMethods.value = url["cam.methods"].split(",").filter(Boolean);
  const step = num(url["cam.step"], 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) camStep.value = Math.floor(step);
  const image = num(url["cam.image"], 0, 1e6);
  selectedImage.value = image === null ? null : Math.floor(image);
  if (url["cam.cmap"] && isColormapName(url["cam.cmap"])) camColormap.value = url["cam.cmap"];
  const opacity = num(url["cam.opacity"], 0, 1);
  if (opacity !== null) camOpacity.value = opacity;
  const threshold = num(url["cam.threshold"], 0, 1);
  if (threshold !== null) camThreshold.value = threshold;
  if (url["cam.norm"] === "shared" || url["cam.norm"] === "image") camNorm.value = url["cam.norm"];
  const size = num(url["cam.size"], MIN_TILE_SIZE, MAX_TILE_SIZE);
  if (size !== null) camTileSize.value = size;
  if (url["cam.compare"] !== undefined) compareRun.value = url["cam.compare"] || null;
}

function state(): Record<string, string | null> {
  const step = currentStep.value;
  return {
    "cam.kind": camKind.value === "cam" ? null : camKind.value,
    "cam.probe": camProbe.value === DEFAULT_PROBE ? null : camProbe.value,
    "cam.layer": camKind.value === "cam" ? camLayer.value : null,
    "cam.methods": camMethods.value.join(","),
    "cam.step": step === null ? null : String(step),
    "cam.image": selectedImage.value === null ? null : String(selectedImage.value),
    "cam.cmap": camColormap.value === DEFAULT_CAM_COLORMAP ? null : camColormap.value,
    "cam.opacity": camOpacity.value === DEFAULT_OPACITY ? null : String(camOpacity.value),
    "cam.threshold": camThreshold.value === DEFAULT_THRESHOLD ? null : String(camThreshold.value),
    "cam.norm": camNorm.value === "image" ? null : camNorm.value,
    "cam.size": camTileSize.value === DEFAULT_TILE_SIZE ? null : String(camTileSize.value),
    "cam.compare": compareRun.value,
  };
}

export const camUrlState: ViewUrlState = { apply, state, stepKey: "cam.step" };
