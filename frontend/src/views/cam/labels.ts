// How the CAM view names layers and methods: FullGrad explains the whole model, so its records carry the
// layer "" (recorders/cams.py); method ids stay as recorded except FullGrad, named as users know it.

/** The name shown for a CAM layer ("" = the whole model, FullGrad's). */
export function layerLabel(layer: string): string {
  return layer === "" ? "whole model" : layer;
}

/** The name shown for a CAM method id. */
export function methodLabel(method: string): string {
  return method === "fullgrad" ? "FullGrad" : method;
}
