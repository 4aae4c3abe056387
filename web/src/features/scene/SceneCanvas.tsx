/** The photo (or depth map) with every object's mask and box, on three stacked canvases so
 * a change to the boxes never repaints the masks and neither repaints the photo. Canvases
 * are at the image's own resolution and scaled by CSS; pointer positions are fractions. */
import { memo, useLayoutEffect, useRef, useState, type PointerEvent } from "react";
import type { ObjectOut } from "../../lib/api/types";
import { rgbCss } from "../../lib/colors";
import { type Box, boxFromCorners, contains, hitTest, moveBox } from "./geometry";
import type { Sprite } from "./masks";

export interface CanvasProps {
  width: number;
  height: number;
  photo: ImageBitmap | null;
  depth: ImageBitmap | null;
  showDepth: boolean;
  objects: ObjectOut[];
  /** Ids of the objects with masks, in drawing order; the same array while they do not change. */
  maskOrder: readonly string[];
  colors: Map<string, [number, number, number]>;
  sprites: Map<string, Sprite>;
  spritesVersion: number;
  selected: ReadonlySet<string>;
  hidden: ReadonlySet<string>;
  masksOn: boolean;
  labelsOn: boolean;
  mode: "select" | "box";
  onPick: (objectId: string | null, additive: boolean) => void;
  onBox: (box: Box) => void;
  onMove: (objectId: string, box: Box) => void;
  /** Shown over the photo (never above it: entering a mode must not move the image). */
  hint?: string | null;
}

type Drag = { id: string; start: [number, number]; box: Box; moved: boolean };

function SceneCanvasImpl(props: CanvasProps) {
  const { width, height, photo, depth, showDepth, objects, maskOrder, colors, sprites, spritesVersion, selected, hidden, masksOn, labelsOn, mode } = props;
  const photoRef = useRef<HTMLCanvasElement>(null);
  const maskRef = useRef<HTMLCanvasElement>(null);
  const highlightRef = useRef<HTMLCanvasElement>(null);
  const boxRef = useRef<HTMLCanvasElement>(null);
  const [corner, setCorner] = useState<[number, number] | null>(null);
  const [pointer, setPointer] = useState<[number, number] | null>(null);
  const [drag, setDrag] = useState<Drag | null>(null);

  useLayoutEffect(() => {
    const ctx = photoRef.current?.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    const image = showDepth && depth ? depth : photo;
    if (image) {
      ctx.drawImage(image, 0, 0, width, height);
      performance.mark(showDepth ? "scene-depth-drawn" : "scene-photo-drawn");
    }
  }, [photo, depth, showDepth, width, height]);

  // Every visible mask, composited once: a selection or a category change never repaints
  // it, hiding one mask repaints only the sprites under that mask's rectangle, and turning
  // all masks off only hides the canvas.
  const shown = useRef<{ hidden: ReadonlySet<string>; version: number; order: readonly string[] } | null>(null);
  useLayoutEffect(() => {
    const canvas = maskRef.current;
    const ctx = canvas?.getContext("2d");
    if (!canvas || !ctx) return;
    const previous = shown.current;
    const changed =
      previous && previous.version === spritesVersion && previous.order === maskOrder
        ? [...new Set([...previous.hidden, ...hidden])].filter((id) => previous.hidden.has(id) !== hidden.has(id))
        : null;
    if (changed && changed.length <= 32) {
      for (const id of changed) {
        const sprite = sprites.get(id);
        if (!sprite) continue;
        const r = { x: sprite.x, y: sprite.y, w: sprite.canvas.width, h: sprite.canvas.height };
        ctx.save();
        ctx.beginPath();
        ctx.rect(r.x, r.y, r.w, r.h);
        ctx.clip();
        ctx.clearRect(r.x, r.y, r.w, r.h);
        ctx.globalAlpha = 0.45;
        for (const other of maskOrder) {
          const s = sprites.get(other);
          if (!s || hidden.has(other)) continue;
          if (s.x > r.x + r.w || s.y > r.y + r.h || s.x + s.canvas.width < r.x || s.y + s.canvas.height < r.y) continue;
          ctx.drawImage(s.canvas, s.x, s.y);
        }
        ctx.restore();
      }
    } else {
      ctx.clearRect(0, 0, width, height);
      ctx.globalAlpha = 0.45;
      for (const id of maskOrder) {
        const sprite = sprites.get(id);
        if (sprite && !hidden.has(id)) ctx.drawImage(sprite.canvas, sprite.x, sprite.y);
      }
      ctx.globalAlpha = 1;
    }
    shown.current = { hidden, version: spritesVersion, order: maskOrder };
    canvas.dataset.masksDrawn = String(maskOrder.filter((id) => sprites.has(id) && !hidden.has(id)).length);
  }, [maskOrder, sprites, spritesVersion, hidden, width, height]);

  // The selected objects' masks, stronger, on a layer of their own (a few; not a thousand).
  useLayoutEffect(() => {
    const ctx = highlightRef.current?.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    if (!masksOn || selected.size > 64) return;
    ctx.globalAlpha = 0.5;
    for (const id of selected) {
      const sprite = sprites.get(id);
      if (sprite && !hidden.has(id)) ctx.drawImage(sprite.canvas, sprite.x, sprite.y);
    }
    ctx.globalAlpha = 1;
  }, [selected, sprites, spritesVersion, hidden, masksOn, width, height]);

  useLayoutEffect(() => {
    const ctx = boxRef.current?.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    const line = Math.max(1, Math.round(Math.max(width, height) / 500));
    ctx.font = `${Math.max(11, line * 7)}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    const many = objects.length > 150;
    const labelSelected = selected.size <= 50;
    for (const o of objects) {
      const isSelected = selected.has(o.object_id);
      const box = drag?.id === o.object_id ? drag.box : (o.bbox as Box);
      const [x0, y0, x1, y1] = [box[0] * width, box[1] * height, box[2] * width, box[3] * height];
      const color = colors.get(o.object_id) ?? [255, 255, 255];
      ctx.strokeStyle = rgbCss(color, isSelected ? 1 : many ? 0.55 : 0.9);
      ctx.lineWidth = isSelected ? line * 3 : line;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      if (labelsOn && ((isSelected && labelSelected) || !many)) {
        const text = `${o.category} ${o.confidence.toFixed(2)}`;
        const w = ctx.measureText(text).width + 6;
        const h = line * 7 + 6;
        ctx.fillStyle = rgbCss(color, 0.85);
        ctx.fillRect(x0, Math.max(h, y0) - h, w, h);
        ctx.fillStyle = "#111";
        ctx.fillText(text, x0 + 3, Math.max(h, y0) - 2);
      }
    }
    if (mode === "box" && corner) {
      const end = pointer ?? corner;
      const b = boxFromCorners(corner, end);
      ctx.setLineDash([line * 6, line * 4]);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = line * 2;
      ctx.strokeRect(b[0] * width, b[1] * height, (b[2] - b[0]) * width, (b[3] - b[1]) * height);
      ctx.setLineDash([]);
    }
  }, [objects, colors, selected, labelsOn, mode, corner, pointer, drag, width, height]);

  function at(event: PointerEvent): [number, number] {
    const rect = (event.currentTarget as HTMLElement).getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height];
  }

  function down(event: PointerEvent) {
    const p = at(event);
    if (mode === "box") {
      if (!corner) {
        setCorner(p);
        setPointer(p);
      } else {
        props.onBox(boxFromCorners(corner, p));
        setCorner(null);
        setPointer(null);
      }
      return;
    }
    const grabbed = objects.find((o) => selected.has(o.object_id) && contains(o.bbox, p[0], p[1]));
    if (grabbed && !event.shiftKey && selected.size === 1) {
      (event.currentTarget as HTMLElement).setPointerCapture(event.pointerId);
      setDrag({ id: grabbed.object_id, start: p, box: grabbed.bbox as Box, moved: false });
      return;
    }
    const hit = hitTest(objects, p[0], p[1]);
    props.onPick(hit?.object_id ?? null, event.shiftKey || event.metaKey || event.ctrlKey);
  }

  function move(event: PointerEvent) {
    if (mode === "box" && corner) {
      setPointer(at(event));
      return;
    }
    if (!drag) return;
    const p = at(event);
    const original = objects.find((o) => o.object_id === drag.id)?.bbox as Box | undefined;
    if (!original) return;
    setDrag({ ...drag, box: moveBox(original, p[0] - drag.start[0], p[1] - drag.start[1]), moved: true });
  }

  function up() {
    if (!drag) return;
    if (drag.moved) props.onMove(drag.id, drag.box);
    setDrag(null);
  }

  // Leaving box mode drops a half-drawn box.
  if (mode !== "box" && corner) setCorner(null);

  return (
    <div
      className={`stage mode-${mode}`}
      style={{ aspectRatio: `${width} / ${height}` }}
      onPointerDown={down}
      onPointerMove={move}
      onPointerUp={up}
      data-testid="stage"
    >
      <canvas ref={photoRef} width={width} height={height} data-layer="photo" />
      <canvas
        ref={maskRef}
        width={width}
        height={height}
        data-layer="masks"
        data-testid="mask-canvas"
        style={{ visibility: masksOn ? "visible" : "hidden" }}
      />
      <canvas ref={highlightRef} width={width} height={height} data-layer="highlight" />
      <canvas ref={boxRef} width={width} height={height} data-layer="boxes" />
      {props.hint && <p className="hint">{props.hint}</p>}
    </div>
  );
}

export const SceneCanvas = memo(SceneCanvasImpl);
