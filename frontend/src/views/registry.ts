// The tab's views. The left panel lists them once there is more than one (activation statistics
// now; CAM overlays, feature maps and gradients are planned), and the main area shows the active one.
import { signal } from "@preact/signals";
import type { ComponentType } from "preact";
import { ActivationStatsView } from "./ActivationStats";

export interface ViewDef {
  id: string;
  title: string;
  component: ComponentType;
}

export const VIEWS: ViewDef[] = [{ id: "stats", title: "Activation statistics", component: ActivationStatsView }];

export const activeView = signal<string>(VIEWS[0].id);
