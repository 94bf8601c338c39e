// The usage chart: one bar per day and amount type, over every day of the range (days without
// usage show as zero). Chart.js comes from node_modules as its UMD build (window.Chart).
import { daysBetween, quantity } from './session.js';

const COLOURS = ['#0172ad', '#c52f21', '#398712', '#9236a4', '#bd5d00', '#5d6b89'];

/**
 * Draws (or redraws) the chart in `canvas`. Bar heights are numbers, as Chart.js needs; the
 * tooltips and the table show the exact decimal strings, so no figure an operator reads went
 * through floating point.
 */
export function drawUsageChart(canvas, { from, to, daily }) {
  const days = daysBetween(from, to);
  const amountTypes = [...new Set(daily.map((line) => line.amountType))].sort();
  const exact = new Map(daily.map((line) => [`${line.day}|${line.amountType}`, line.total]));
  const datasets = amountTypes.map((amountType, i) => ({
    label: amountType,
    data: days.map((day) => Number(exact.get(`${day}|${amountType}`) ?? 0)),
    backgroundColor: COLOURS[i % COLOURS.length],
  }));
  Chart.getChart(canvas)?.destroy();
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: days, datasets },
    options: {
      // Drawn at once: an operator (and a screenshot) sees the final figures, not a growing bar.
      animation: false,
      maintainAspectRatio: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: 'quantity' } } },
      plugins: {
        tooltip: {
          callbacks: {
            label: (item) => `${item.dataset.label}: ${quantity(exact.get(`${days[item.dataIndex]}|${item.dataset.label}`) ?? '0')}`,
          },
        },
      },
    },
  });
}
