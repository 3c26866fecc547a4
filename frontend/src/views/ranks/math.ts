// Pure helpers of the rank view: which runs form a family (the server's rule, plugin/rank_families.py),
// and the layer × step matrix the heatmap shows.

const RANK_RUN = /^(?:(.+)\/)?rank([0-9]{1,6})$/;
/** The family of runs rank<r> at the top of the logdir (TensorBoard's name for the logdir itself). */
export const ROOT_FAMILY = ".";

/** The family name and rank of a per-rank run (`<name>/rank<r>`), or null. */
export function rankOf(run: string): { family: string; rank: number } | null {
  const m = RANK_RUN.exec(run);
  return m ? { family: m[1] ?? ROOT_FAMILY, rank: Number(m[2]) } : null;
}

/** Families of two ranks or more among these run names, by name. */
export function familyNames(runs: readonly string[]): string[] {
  const ranks = new Map<string, Set<number>>();
  for (const run of runs) {
    const r = rankOf(run);
    if (!r) continue;
    const set = ranks.get(r.family) ?? new Set<number>();
    set.add(r.rank);
    ranks.set(r.family, set);
  }
  return [...ranks].filter(([, set]) => set.size >= 2).map(([name]) => name).sort();
}

/** log10 of the positive values of a matrix (null elsewhere): deviations span many decades. */
export function log10Matrix(values: (number | null)[][]): (number | null)[][] {
  return values.map((row) => row.map((v) => (typeof v === "number" && v > 0 ? Math.log10(v) : null)));
}

/** [min, max] of the non-null values, or null when there is none. */
export function valueRange(values: (number | null)[][]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of values) for (const v of row) if (v !== null) ((lo = Math.min(lo, v)), (hi = Math.max(hi, v)));
  return lo <= hi ? [lo, hi] : null;
}

/** Ranks whose last recorded step is before the family's last step (they stopped early). */
export function stoppedEarly(ranks: readonly number[], lastSteps: readonly (number | null)[]): { rank: number; last: number | null }[] {
  const last = Math.max(...lastSteps.map((s) => s ?? -1));
  return ranks.flatMap((rank, i) => ((lastSteps[i] ?? -1) < last ? [{ rank, last: lastSteps[i] }] : []));
}
