import assert from "node:assert/strict";
import { test } from "node:test";
import { HEALTH_THRESHOLDS, healthThresholds, healthUrlState } from "../src/views/stats/health_state";
import { isStatName, STATS } from "../src/views/stats/state";

test("health thresholds round-trip through the deep link; bad values are ignored", () => {
  const none = { "health.massive": null, "health.peakRms": null, "health.entropyMin": null, "health.logitGrowth": null };
  assert.deepEqual(healthUrlState.state(), none, "defaults stay out of the link");
  healthUrlState.apply({ "health.massive": "2500", "health.peakRms": "0.5", "health.entropyMin": "0.3", "health.logitGrowth": "1" });
  assert.equal(healthThresholds.value.massive_ratio, 2500);
  assert.equal(healthThresholds.value.peak_rms, 100, "a threshold at or below 1 is refused");
  assert.equal(healthThresholds.value.entropy_min, 0.3);
  assert.equal(healthThresholds.value.logit_growth, 10, "a growth factor at or below 1 is refused");
  assert.deepEqual(healthUrlState.state(), { ...none, "health.massive": "2500", "health.entropyMin": "0.3" });
  healthUrlState.apply({ "health.massive": "abc" });
  assert.equal(healthThresholds.value.massive_ratio, 2500);
  healthThresholds.value = Object.fromEntries(HEALTH_THRESHOLDS.map((t) => [t.param, t.defaultValue]));
});

test("the heatmap picker knows the health numbers", () => {
  assert.ok(isStatName("peakToRms") && isStatName("massiveCount"));
  assert.ok(!STATS.includes("numel" as never));
});
