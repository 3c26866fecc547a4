// The CAM view: class-activation and saliency maps over the probe images, over training.
import type { ViewDef } from "../../core/view";
import { CamSettings } from "./CamSettings";
import { CamView } from "./CamView";
import { startCamLoaders } from "./loaders";
import { CAM_VIEW } from "./state";
import { camUrlState } from "./url";

export const camView: ViewDef = {
  id: CAM_VIEW,
  title: "CAM",
  component: CamView,
  settings: CamSettings,
  start: startCamLoaders,
  url: camUrlState,
};
