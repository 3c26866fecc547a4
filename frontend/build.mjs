// Builds the tab into ONE deterministic ES module: tb_plugin_insight/plugin/static/index.js.
//   node build.mjs [--outfile <path>] [--watch]
// No code splitting (every chunk would need its own route), no eval, CSS inlined as text.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { readFile } from "node:fs/promises";

const here = fileURLToPath(new URL(".", import.meta.url));
const args = process.argv.slice(2);
const outIdx = args.indexOf("--outfile");
const outfile = outIdx >= 0 ? resolve(args[outIdx + 1]) : resolve(here, "../tb_plugin_insight/plugin/static/index.js");
const watch = args.includes("--watch");

const banner =
  "/*! tb-plugin-insight frontend (Apache-2.0). Bundles Preact and @preact/signals (MIT, The Preact Authors)," +
  " uPlot (MIT, Leon Sorokin). Colormaps: viridis/inferno from matplotlib (CC0)," +
  " turbo (Copyright 2019 Google LLC, Apache-2.0), jet OpenCV-style. Built from frontend/ by scripts/build_frontend.sh. */";

// CSS is imported as a minified string (injected as a <style> by render()).
const cssAsMinifiedText = {
  name: "css-as-minified-text",
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const { code } = await esbuild.transform(source, { loader: "css", minify: true, target: "chrome100" });
      return { contents: code, loader: "text" };
    });
  },
};

const options = {
  absWorkingDir: here,
  entryPoints: ["src/index.tsx"],
  bundle: true,
  format: "esm",
  splitting: false,
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  jsx: "automatic",
  jsxImportSource: "preact",
  plugins: [cssAsMinifiedText],
  banner: { js: banner },
  define: { "process.env.NODE_ENV": '"production"' },
  outfile,
  logLevel: "warning",
};

if (watch) {
  const ctx = await esbuild.context({ ...options, logLevel: "info" });
  await ctx.watch();
} else {
  await esbuild.build(options);
  console.log("built " + outfile);
}
