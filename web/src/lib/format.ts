export const pct = (x: number, digits = 0) => `${(x * 100).toFixed(digits)}%`;
export const conf = (x: number | null | undefined) => (x == null ? "—" : x.toFixed(2));
export const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);
export const when = (iso: string | null | undefined) =>
  iso ? new Date(iso).toLocaleString() : "—";
export const short = (id: string) => id.slice(0, 8);
