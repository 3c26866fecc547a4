// The gradient-flow chart: mean and max |g| of each layer's parameter gradients at one step, as bars
// from input to output on a log scale. Clicking a bar picks it (FlowCard: selects its layer, or unfolds
// its group). With hundreds of bars, labels thin out to every k-th.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import { axisStyle } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import { colors, logAxis, logRange } from "./chart_style";
import type { FlowColumns } from "./math";

export function FlowChart(props: {
  cols: FlowColumns;
  range: [number, number] | null;
  /** The bar to highlight (the selected layer's, or its folded group's), or -1. */
  selectedIndex: number;
  dark: boolean;
  onPick: (index: number) => void;
}) {
  const { cols, dark } = props;
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const selectedIndex = useRef(-1);
  selectedIndex.current = props.selectedIndex;
  const pick = useRef(props.onPick);
  pick.current = props.onPick;
  const range = useRef(props.range);
  range.current = props.range;
  const key = cols.layers.join("\u0000") + (dark ? "|dark" : "|light");
  const data = (c: FlowColumns): uPlot.AlignedData => [c.layers.map((_, i) => i), c.max, c.mean];

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const c = colors(dark);
    const names = cols.layers;
    const longest = names.reduce((m, n) => Math.max(m, n.length), 1);
    const labelSpace = Math.min(150, 14 + longest * 6.2);
    const options: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: 260 + labelSpace,
      scales: {
        x: { time: false, range: [-0.5, names.length - 0.5] },
        y: {
          distr: 3,
          log: 10,
          range: (_u, min, max) => range.current ?? logRange(min, max),
        },
      },
      axes: [
        {
          ...axisStyle(dark),
          grid: { show: false },
          rotate: -60,
          size: labelSpace,
          splits: (u) => {
            const every = Math.max(1, Math.ceil((names.length * 13) / Math.max(1, u.bbox.width / devicePixelRatio)));
            return names.map((_, i) => i).filter((i) => i % every === 0);
          },
          values: (_u, splits) => splits.map((i) => names[i] ?? ""),
        },
        logAxis(dark),
      ],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { live: true },
      series: [
        { label: "layer", value: (_u, v) => (v === null || v === undefined ? "–" : names[v] ?? "–") },
        {
          label: "max |g|",
          fill: c.max,
          stroke: c.maxEdge,
          width: 1,
          paths: uPlot.paths.bars!({ size: [0.7, 48] }),
          points: { show: false },
          value: (_u, v) => formatValue(v),
        },
        {
          label: "mean |g|",
          fill: dark ? c.meanDark : c.mean,
          stroke: dark ? c.meanDark : c.mean,
          width: 1,
          paths: uPlot.paths.bars!({ size: [0.4, 28] }),
          points: { show: false },
          value: (_u, v) => formatValue(v),
        },
      ],
      hooks: {
        drawClear: [
          (u) => {
            const i = selectedIndex.current;
            if (i < 0) return;
            const x0 = u.valToPos(i - 0.5, "x", true);
            const x1 = u.valToPos(i + 0.5, "x", true);
            u.ctx.save();
            u.ctx.fillStyle = c.selected;
            u.ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
            u.ctx.restore();
          },
        ],
      },
    };
    const u = new uPlot(options, data(cols), el);
    plot.current = u;
    const onClick = () => {
      const i = u.cursor.idx;
      if (i !== null && i !== undefined && names[i] !== undefined) pick.current(i);
    };
    u.over.addEventListener("click", onClick);
    u.over.style.cursor = "pointer";
    let lastWidth = el.clientWidth;
    const ro = new ResizeObserver(() => {
      const w = Math.max(240, el.clientWidth);
      if (w !== lastWidth) {
        lastWidth = w;
        u.setSize({ width: w, height: options.height });
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.over.removeEventListener("click", onClick);
      u.destroy();
      plot.current = null;
    };
    // The chart is rebuilt when its layers or the theme change (key); data updates use setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  useEffect(() => {
    plot.current?.setData(data(cols));
  }, [cols]);
  useEffect(() => {
    plot.current?.redraw(false);
  }, [props.selectedIndex]);

  return <div ref={ref} class="ins-gradflow-plot" />;
}
