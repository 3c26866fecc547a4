// The tab's views. The left panel lists them and shows the active view's settings; the main area
// shows the active view. The Model view (the model table and each layer's panel) is the index.
// A view is one folder under views/ and one entry here: its component, its left-panel settings, its
// loaders (started once; they fetch only while the view needs data) and its part of the deep link.
import type { ComponentType } from "preact";
import type { ViewUrlState } from "../lib/urlstate";
import { CamSettings } from "../views/cam/CamSettings";
import { CamView } from "../views/cam/CamView";
import { startCamLoaders } from "../views/cam/loaders";
import { camUrlState } from "../views/cam/url";
import { FeatureMapsSettings } from "../views/fmaps/FeatureMapsSettings";
import { FeatureMapsView } from "../views/fmaps/FeatureMapsView";
import { GradientSettings } from "../views/grads/GradientSettings";
import { GradientView } from "../views/grads/GradientView";
import { startGradLoaders } from "../views/grads/state";
import { gradUrlState } from "../views/grads/url";
import { ModelView } from "../views/model/ModelView";
import { startModelLoaders } from "../views/model/state";
import { StatsSettings } from "../views/stats/StatsSettings";
import { ActivationStatsView } from "../views/stats/StatsView";
import { startStatsLoaders } from "../views/stats/state";

export interface ViewDef {
  id: string;
  title: string;
  component: ComponentType;
  /** Settings shown in the left panel while the view is active. */
  settings?: ComponentType;
  /** Starts the view's loaders (once, at start-up). */
  start?: () => void;
  /** The view's keys of the deep link. */
  url?: ViewUrlState;
}

export const VIEWS: ViewDef[] = [
  { id: "model", title: "Model", component: ModelView, start: startModelLoaders },
  {
    id: "stats",
    title: "Activation statistics",
    component: ActivationStatsView,
    settings: StatsSettings,
    start: startStatsLoaders,
  },
  {
    id: "grads",
    title: "Gradients",
    component: GradientView,
    settings: GradientSettings,
    start: startGradLoaders,
    url: gradUrlState,
  },
  { id: "cam", title: "CAM", component: CamView, settings: CamSettings, start: startCamLoaders, url: camUrlState },
  { id: "fmaps", title: "Feature maps", component: FeatureMapsView, settings: FeatureMapsSettings },
];

export function isViewId(id: string): boolean {
  return VIEWS.some((v) => v.id === id);
}

export function viewById(id: string): ViewDef | undefined {
  return VIEWS.find((v) => v.id === id);
}
