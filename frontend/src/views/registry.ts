// The tab's views. The left panel lists them and shows the active view's settings; the main area
// shows the active view. The Model view (the model table and each layer's panel) is the index.
import type { ComponentType } from "preact";
import { activeView } from "../state";
import { ActivationStatsView, ActivationStatsSettings } from "./ActivationStats";
import { CamView } from "./CamView";
import { CamSettings } from "./CamSettings";
import { FeatureMapsSettings, FeatureMapsView } from "./FeatureMapsView";
import { GradientSettings } from "./GradientSettings";
import { GradientView } from "./GradientView";
import { ModelView } from "./ModelView";

export interface ViewDef {
  id: string;
  title: string;
  component: ComponentType;
  /** Settings shown in the left panel while the view is active. */
  settings?: ComponentType;
}

export const VIEWS: ViewDef[] = [
  { id: "model", title: "Model", component: ModelView },
  { id: "stats", title: "Activation statistics", component: ActivationStatsView, settings: ActivationStatsSettings },
  { id: "grads", title: "Gradients", component: GradientView, settings: GradientSettings },
  { id: "cam", title: "CAM", component: CamView, settings: CamSettings },
  { id: "fmaps", title: "Feature maps", component: FeatureMapsView, settings: FeatureMapsSettings },
];

export function isViewId(id: string): boolean {
  return VIEWS.some((v) => v.id === id);
}

export { activeView };
