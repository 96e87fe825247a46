// Requests and failures per hour over the last 24 hours: an SVG bar chart
// built with DOM calls (colours from console.css classes), and the same
// figures as a table for screen readers and for reading exact numbers.

import { h, svg, table, uid } from './dom.js';

const W = 720;
const H = 220;
const PAD = { top: 12, right: 12, bottom: 28, left: 44 };

/** The chart of `hours` ([{hour, requests, failures}], oldest first). */
export function hourlyChart(hours) {
  const totalRequests = hours.reduce((n, x) => n + x.requests, 0);
  const totalFailures = hours.reduce((n, x) => n + x.failures, 0);
  const titleId = uid('chart');
  const summary = `Requests and failures per hour over the last 24 hours: ${totalRequests} requests, ${totalFailures} with a failure.`;
  const max = niceMax(Math.max(1, ...hours.map((x) => x.requests)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, hours.length);
  const y = (v) => PAD.top + plotH - (v / max) * plotH;

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-labelledby': titleId, preserveAspectRatio: 'xMidYMid meet' },
    svg('title', { id: titleId }, summary));
  for (const tick of [0, max / 2, max]) {
    chart.append(
      svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(tick), y2: y(tick), class: 'chart-grid' }),
      svg('text', { x: PAD.left - 6, y: y(tick) + 4, class: 'chart-label chart-label-y' }, formatTick(tick)));
  }
  hours.forEach((x, i) => {
    const left = PAD.left + i * slot;
    const barW = Math.max(2, slot * 0.7);
    const bx = left + (slot - barW) / 2;
    const label = `${hourLabel(x.hour)}: ${x.requests} requests, ${x.failures} failed`;
    const group = svg('g', null, svg('title', null, label));
    if (x.requests > 0) {
      group.append(svg('rect', { x: bx, y: y(x.requests), width: barW, height: Math.max(1, y(0) - y(x.requests)), class: 'chart-requests' }));
    }
    if (x.failures > 0) {
      group.append(svg('rect', { x: bx, y: y(x.failures), width: barW, height: Math.max(1, y(0) - y(x.failures)), class: 'chart-failures' }));
    }
    chart.append(group);
    if (i % 3 === 0) {
      chart.append(svg('text', { x: left + slot / 2, y: H - 8, class: 'chart-label chart-label-x' }, hourLabel(x.hour)));
    }
  });
  chart.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: 'chart-axis' }));

  const legend = h('ul', { class: 'legend' },
    h('li', null, h('span', { class: 'swatch swatch-requests', 'aria-hidden': 'true' }), `Requests (${totalRequests})`),
    h('li', null, h('span', { class: 'swatch swatch-failures', 'aria-hidden': 'true' }), `Requests with a failure (${totalFailures})`));

  const data = h('details', { class: 'chart-data' },
    h('summary', null, 'Show the figures as a table'),
    table({
      caption: 'Requests and failures per hour, last 24 hours',
      columns: [
        { label: 'Hour', cell: (x) => hourLabel(x.hour), rowHeader: true },
        { label: 'Requests', cell: (x) => String(x.requests), className: 'num' },
        { label: 'Failures', cell: (x) => String(x.failures), className: 'num' },
      ],
      rows: hours,
    }));

  return h('figure', { class: 'chart-figure' }, chart, h('figcaption', null, legend), data);
}

function hourLabel(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${String(d.getHours()).padStart(2, '0')}:00`;
}

/** 1, 2, 5 × 10ⁿ at or above `v`. */
function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatTick(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
