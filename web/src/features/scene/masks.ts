/** Mask overlays from the mask PNGs (8-bit grey, 255 inside the object, image-sized). Each
 * mask is cut to its object's box (plus a margin) as it decodes and recoloured once into a
 * small canvas — a sprite — so redrawing a thousand overlays is a thousand small drawImage
 * calls, not a thousand full-image passes. Fetched with CORS (fetch, not <img>), so the
 * canvases stay readable. */
import { authHeaders } from "../../lib/auth";
import { apiUrl } from "../../lib/config";
import { pixelRect } from "./geometry";

export interface Sprite {
  canvas: HTMLCanvasElement;
  x: number;
  y: number;
}

/** Fetch an image the API pointed at: credentials only to the API itself (a presigned
 * storage URL carries its own signature and must get no other). */
export async function fetchBitmap(url: string, crop?: { x: number; y: number; w: number; h: number }, signal?: AbortSignal): Promise<ImageBitmap> {
  const base = apiUrl() || window.location.origin;
  const own = url.startsWith("/") || url.startsWith(base);
  const response = await fetch(url, { headers: own ? authHeaders() : {}, signal, credentials: "omit" });
  if (!response.ok) throw new Error(`image ${response.status}`);
  const blob = await response.blob();
  return crop ? createImageBitmap(blob, crop.x, crop.y, crop.w, crop.h) : createImageBitmap(blob);
}

export async function maskSprite(
  url: string,
  bbox: readonly number[],
  width: number,
  height: number,
  rgb: [number, number, number],
  signal?: AbortSignal,
): Promise<Sprite> {
  const rect = pixelRect(bbox, width, height, 8);
  const bitmap = await fetchBitmap(url, rect, signal);
  const canvas = document.createElement("canvas");
  canvas.width = rect.w;
  canvas.height = rect.h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no 2d context");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const image = ctx.getImageData(0, 0, rect.w, rect.h);
  const px = image.data;
  for (let i = 0; i < px.length; i += 4) {
    const inside = px[i]! > 127;
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
    px[i + 3] = inside ? 255 : 0;
  }
  ctx.putImageData(image, 0, 0);
  return { canvas, x: rect.x, y: rect.y };
}

/** Run loads with at most ``limit`` in flight. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    this.active += 1;
    try {
      return await work();
    } finally {
      this.active -= 1;
      this.queue.shift()?.();
    }
  }
}
