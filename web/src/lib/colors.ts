/** A stable, distinct colour per object index: golden-angle hues, so neighbours differ. */
export function objectColor(index: number): [number, number, number] {
  const hue = (index * 137.508) % 360;
  return hslToRgb(hue / 360, 0.75, 0.55);
}

export function rgbCss([r, g, b]: [number, number, number], alpha = 1): string {
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h * 12) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}
