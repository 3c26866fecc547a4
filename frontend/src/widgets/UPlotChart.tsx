// A uPlot chart that follows its container's width. Options are read once per mount (callers
// remount with a `key` to change them, e.g. on theme change); data updates use setData().
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface UPlotChartProps {
  options: Omit<uPlot.Options, "width" | "height">;
  data: uPlot.AlignedData;
  height: number;
  class?: string;
}

export function UPlotChart(props: UPlotChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = Math.max(200, el.clientWidth);
    const u = new uPlot({ ...props.options, width, height: props.height } as uPlot.Options, props.data, el);
    plot.current = u;
    let lastWidth = width;
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (w !== lastWidth) {
        lastWidth = w;
        u.setSize({ width: w, height: props.height });
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Options are fixed for the lifetime of the chart (see the comment above).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  return <div class={props.class} ref={ref} />;
}
