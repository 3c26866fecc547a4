// Runs the frontend unit tests (tests/*.test.ts) with Node's built-in test runner: each test file
// is bundled by esbuild into a temp dir (types stripped), then `node --test` runs them.
// Pure modules only (maths, LUTs, IPC, API client); drawing is covered by tests/test_browser.py.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const testsDir = join(here, "tests");
const files = readdirSync(testsDir).filter((f) => f.endsWith(".test.ts")).sort();
const outdir = mkdtempSync(join(tmpdir(), "insight-unit-"));
try {
  await esbuild.build({
    absWorkingDir: here,
    entryPoints: files.map((f) => join(testsDir, f)),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir,
    outExtension: { ".js": ".mjs" },
    jsx: "automatic",
    jsxImportSource: "preact",
    loader: { ".css": "text" },
    logLevel: "warning",
  });
  const outputs = files.map((f) => join(outdir, f.replace(/\.ts$/, ".mjs")));
  const result = spawnSync(process.execPath, ["--test", ...outputs], { stdio: "inherit" });
  process.exitCode = result.status ?? 1;
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
