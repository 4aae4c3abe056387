/** Boxes as fractions of the image: (x0, y0, x1, y1). Pure (unit-tested). */
export type Box = [number, number, number, number];

const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

/** The box two clicks make, whichever corners they were and in whichever order. */
export function boxFromCorners(a: [number, number], b: [number, number]): Box {
  return [
    clamp01(Math.min(a[0], b[0])),
    clamp01(Math.min(a[1], b[1])),
    clamp01(Math.max(a[0], b[0])),
    clamp01(Math.max(a[1], b[1])),
  ];
}

/** ``box`` moved by (dx, dy), kept inside the image without changing its size. */
export function moveBox(box: Box, dx: number, dy: number): Box {
  const w = box[2] - box[0];
  const h = box[3] - box[1];
  const x0 = Math.min(1 - w, Math.max(0, box[0] + dx));
  const y0 = Math.min(1 - h, Math.max(0, box[1] + dy));
  return [x0, y0, x0 + w, y0 + h];
}

export function contains(box: readonly number[], x: number, y: number): boolean {
  return x >= (box[0] ?? 0) && x <= (box[2] ?? 0) && y >= (box[1] ?? 0) && y <= (box[3] ?? 0);
}

/** The object under (x, y): the smallest box containing the point (a small object on top
 * of a large one is the one meant), or null. */
export function hitTest<T extends { bbox: readonly number[] }>(objects: readonly T[], x: number, y: number): T | null {
  let best: T | null = null;
  let bestArea = Infinity;
  for (const o of objects) {
    if (!contains(o.bbox, x, y)) continue;
    const area = ((o.bbox[2] ?? 0) - (o.bbox[0] ?? 0)) * ((o.bbox[3] ?? 0) - (o.bbox[1] ?? 0));
    if (area < bestArea) {
      best = o;
      bestArea = area;
    }
  }
  return best;
}

/** The pixel rectangle of a fractional box in a ``w`` × ``h`` image, grown by ``pad`` pixels
 * and kept inside the image (a mask can spill a little past its prompt box). */
export function pixelRect(box: readonly number[], w: number, h: number, pad = 0): { x: number; y: number; w: number; h: number } {
  const x0 = Math.max(0, Math.floor((box[0] ?? 0) * w) - pad);
  const y0 = Math.max(0, Math.floor((box[1] ?? 0) * h) - pad);
  const x1 = Math.min(w, Math.ceil((box[2] ?? 0) * w) + pad);
  const y1 = Math.min(h, Math.ceil((box[3] ?? 0) * h) + pad);
  return { x: x0, y: y0, w: Math.max(1, x1 - x0), h: Math.max(1, y1 - y0) };
}
