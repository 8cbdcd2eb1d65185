// An ECharts instance on an element that follows the element's size (charts
// live in drawers and tabs that open with an animation) and is disposed with
// the component. `draw(chart)` is called once mounted; call the returned
// redraw() when the data changes.
import { onMounted, onUnmounted } from 'vue';
// only what the console draws (line and bar charts on a canvas), not all of ECharts
import * as echarts from 'echarts/core';
import { BarChart, LineChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([BarChart, LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export function useChart(el, draw) {
  let chart = null, observer = null;
  const redraw = () => { if (chart) draw(chart); };
  const unmount = () => { observer?.disconnect(); chart?.dispose(); chart = null; };
  const mount = () => {
    if (!el.value || chart?.getDom() === el.value) return;
    unmount(); // the element was replaced (v-if): start on the new one
    chart = echarts.init(el.value);
    observer = new ResizeObserver(() => chart.resize());
    observer.observe(el.value);
  };
  onMounted(() => { mount(); redraw(); });
  onUnmounted(unmount);
  // for an element that appears later (v-if): mount on the first redraw
  return () => { mount(); redraw(); };
}
