// Recorded steps: every view shows the recorded step at or before the one asked for.

/** Largest recorded step <= `step` in an ascending list, or null when every step is later. */
export function stepAtOrBefore(steps: readonly number[], step: number): number | null {
  let lo = 0;
  let hi = steps.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found >= 0 ? steps[found] : null;
}

/** Index of the step shown for `step` (at or before it; the first when it is earlier than all). */
export function stepIndex(steps: readonly number[], step: number | null): number {
  if (!steps.length) return -1;
  if (step === null) return 0;
  const s = stepAtOrBefore(steps, step);
  return s === null ? 0 : steps.indexOf(s);
}

/** Sorted union of several ascending step lists. */
export function unionSteps(lists: readonly (readonly number[])[]): number[] {
  if (lists.length === 1) return [...lists[0]];
  const set = new Set<number>();
  for (const l of lists) for (const s of l) set.add(s);
  return [...set].sort((x, y) => x - y);
}

/** Index of the step at or before `step` in ascending `steps` (the last one for null; -1 if none). */
export function stepIndexAtOrBefore(steps: readonly number[], step: number | null): number {
  if (!steps.length) return -1;
  if (step === null) return steps.length - 1;
  let lo = 0;
  let hi = steps.length - 1;
  if (step < steps[0]) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (steps[mid] <= step) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
