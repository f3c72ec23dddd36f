/** A line chart as a standalone SVG, written by hand: no dependency for one picture. */

export interface ChartSeries {
  name: string;
  /** [x, y] in data units, x ascending. */
  points: [number, number][];
  /** A dashed vertical line at this x, in the series' colour (e.g. its ideal finishing time). */
  marker?: number;
}

export interface Chart {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  yMax?: number;
  series: ChartSeries[];
}

const colours = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const escape = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** Round tick steps (1, 2, 5 × 10^n) giving about `count` ticks up to `max`. */
function ticks(max: number, count = 6): number[] {
  if (max <= 0) return [0];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? power * 10;
  const out: number[] = [];
  for (let t = 0; t <= max + step / 1e6; t += step) out.push(Math.round(t * 1e6) / 1e6);
  return out;
}

export function lineChart(chart: Chart): string {
  const width = 1100;
  const height = 540;
  const left = 70;
  const right = 340;
  const top = chart.subtitle === undefined ? 50 : 70;
  const bottom = 60;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const xMax = Math.max(
    1,
    ...chart.series.flatMap((s) => [...s.points.map((p) => p[0]), ...(s.marker === undefined ? [] : [s.marker])]),
  );
  const yMax = chart.yMax ?? Math.max(1, ...chart.series.flatMap((s) => s.points.map((p) => p[1])));
  const xTicks = ticks(xMax);
  const yTicks = ticks(yMax, 5);
  const xEnd = Math.max(xMax, xTicks.at(-1) ?? xMax);
  const yEnd = Math.max(yMax, yTicks.at(-1) ?? yMax);
  const x = (v: number) => left + (v / xEnd) * plotW;
  const y = (v: number) => top + plotH - (v / yEnd) * plotH;
  const f = (v: number) => v.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${escape(chart.title)}</text>`,
  ];
  if (chart.subtitle !== undefined) {
    parts.push(`<text x="${left}" y="44" fill="#555">${escape(chart.subtitle)}</text>`);
  }
  for (const t of xTicks) {
    parts.push(
      `<line x1="${f(x(t))}" y1="${top}" x2="${f(x(t))}" y2="${top + plotH}" stroke="#eee"/>`,
      `<text x="${f(x(t))}" y="${top + plotH + 18}" text-anchor="middle">${t}</text>`,
    );
  }
  for (const t of yTicks) {
    parts.push(
      `<line x1="${left}" y1="${f(y(t))}" x2="${left + plotW}" y2="${f(y(t))}" stroke="#eee"/>`,
      `<text x="${left - 8}" y="${f(y(t) + 4)}" text-anchor="end">${t}</text>`,
    );
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle">${escape(chart.xLabel)}</text>`,
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const colour = colours[i % colours.length] ?? '#000';
    if (s.points.length > 0) {
      const d = s.points.map(([px, py], j) => `${j === 0 ? 'M' : 'L'}${f(x(px))},${f(y(py))}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    }
    if (s.marker !== undefined) {
      parts.push(
        `<line x1="${f(x(s.marker))}" y1="${top}" x2="${f(x(s.marker))}" y2="${top + plotH}" stroke="${colour}" stroke-dasharray="5,4"/>`,
      );
    }
    const ly = top + 10 + i * 36;
    parts.push(
      `<line x1="${left + plotW + 14}" y1="${ly}" x2="${left + plotW + 38}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${left + plotW + 44}" y="${ly + 4}">${escape(s.name)}</text>`,
    );
    if (s.marker !== undefined) {
      parts.push(
        `<line x1="${left + plotW + 14}" y1="${ly + 16}" x2="${left + plotW + 38}" y2="${ly + 16}" stroke="${colour}" stroke-dasharray="5,4"/>`,
        `<text x="${left + plotW + 44}" y="${ly + 20}" fill="#555">ideal: ${Math.round(s.marker)} s</text>`,
      );
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
