// The Feature maps view: a layer's feature maps of the probe over training, and its filters.
import type { ViewDef } from "../../core/view";
import { FeatureMapsSettings } from "./FeatureMapsSettings";
import { FeatureMapsView } from "./FeatureMapsView";
import { FMAPS_VIEW } from "./state";

export const fmapsView: ViewDef = {
  id: FMAPS_VIEW,
  title: "Feature maps",
  component: FeatureMapsView,
  settings: FeatureMapsSettings,
};
