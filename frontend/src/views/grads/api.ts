// Route of the gradient view: the layers' gradient statistics (metadata.GRAD_FIELDS) over steps.
import { getJson, matrixRows } from "../../core/api";
import type { GradField } from "../../generated/fields";

export type { GradField };

export interface GradientLayer {
  name: string;
  moduleType: string;
  shape: number[] | null;
  order: number;
}

export interface GradientsResponse {
  run: string;
  fields: string[];
  layers: GradientLayer[];
  steps: number[];
  /** Recorded steps before thinning (max_steps) or step selection; older backends omit it, and so
   * does a sampled answer. */
  totalSteps?: number;
  /** The first answer on a run the server has not read yet: a sample of its steps (the exact answer
   * follows on the next request). */
  sampled?: boolean;
  /** values[field][i][j]: layer layers[i] at step steps[j]; null = no record or not finite. */
  values: Record<string, (number | null)[][]>;
}

/** Only what a view shows: one layer, one step (at or before), or at most `maxSteps` columns. */
export interface GradientsQuery {
  fields?: readonly GradField[];
  layer?: string;
  step?: number;
  maxSteps?: number;
}

export async function fetchGradients(run: string, query: GradientsQuery = {}, signal?: AbortSignal): Promise<GradientsResponse> {
  const params: Record<string, string> = { run, encoding: "f32" };
  if (query.fields?.length) params.fields = query.fields.join(",");
  if (query.layer !== undefined) params.layer = query.layer;
  if (query.step !== undefined) params.step = String(query.step);
  if (query.maxSteps !== undefined) params.max_steps = String(query.maxSteps);
  const body = await getJson<GradientsResponse>("gradients", params, signal);
  const values: GradientsResponse["values"] = {};
  for (const [field, m] of Object.entries(body.values ?? {})) values[field] = matrixRows(m);
  return { ...body, values };
}
