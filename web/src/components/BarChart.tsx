/** A horizontal bar chart in SVG: a few dozen bars need no chart library. */
export interface Bar {
  key: string;
  label: string;
  value: number;
  share?: number;
  color?: string;
}

export function BarChart({ bars, title, max = 12 }: { bars: Bar[]; title: string; max?: number }) {
  const shown = bars.slice(0, max);
  const top = Math.max(1, ...shown.map((b) => b.value));
  const rowH = 22;
  const labelW = 130;
  const width = 420;
  return (
    <figure className="chart" aria-label={title}>
      <figcaption>{title}</figcaption>
      {shown.length === 0 ? (
        <p className="muted">no data yet</p>
      ) : (
        <svg width="100%" viewBox={`0 0 ${width} ${shown.length * rowH}`} role="img">
          {shown.map((bar, i) => {
            const w = ((width - labelW - 70) * bar.value) / top;
            return (
              <g key={bar.key} transform={`translate(0 ${i * rowH})`} data-bar={bar.key}>
                <text x={labelW - 6} y={15} textAnchor="end" className="chart-label">
                  {bar.label}
                </text>
                <rect x={labelW} y={4} width={Math.max(1, w)} height={rowH - 8} rx={3} fill={bar.color ?? "var(--accent)"} />
                <text x={labelW + w + 6} y={15} className="chart-value">
                  {bar.value}
                  {bar.share !== undefined ? ` · ${(bar.share * 100).toFixed(0)}%` : ""}
                </text>
              </g>
            );
          })}
        </svg>
      )}
      {bars.length > max && <p className="muted">and {bars.length - max} more</p>}
    </figure>
  );
}
