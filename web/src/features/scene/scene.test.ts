import { describe, expect, it } from "vitest";
import { boxFromCorners, hitTest, moveBox, pixelRect } from "./geometry";
import { History } from "./history";

describe("geometry", () => {
  it("makes a box from two clicks in any order, inside the image", () => {
    expect(boxFromCorners([0.6, 0.1], [0.2, 0.5])).toEqual([0.2, 0.1, 0.6, 0.5]);
    expect(boxFromCorners([-0.1, 1.2], [0.3, 0.4])).toEqual([0, 0.4, 0.3, 1]);
  });
  it("moves a box without leaving the image or resizing it", () => {
    const moved = moveBox([0.7, 0.7, 0.9, 0.9], 0.5, -1);
    expect(moved[0]).toBeCloseTo(0.8);
    expect(moved[1]).toBeCloseTo(0);
    expect(moved[2] - moved[0]).toBeCloseTo(0.2);
  });
  it("picks the smallest box under the pointer", () => {
    const objects = [
      { id: "big", bbox: [0, 0, 1, 1] },
      { id: "small", bbox: [0.4, 0.4, 0.6, 0.6] },
    ];
    expect(hitTest(objects, 0.5, 0.5)?.id).toBe("small");
    expect(hitTest(objects, 0.1, 0.1)?.id).toBe("big");
    expect(hitTest(objects.slice(1), 0.1, 0.1)).toBeNull();
  });
  it("turns a fractional box into a padded pixel rectangle inside the image", () => {
    expect(pixelRect([0.5, 0.5, 1, 1], 100, 50, 4)).toEqual({ x: 46, y: 21, w: 54, h: 29 });
  });
});

describe("History", () => {
  it("undoes by sending the old values, redoes by sending the new, forgets redo on a new step", () => {
    const h = new History();
    h.push({ label: "cat", edits: [{ objectId: "o", before: { category: "sofa" }, after: { category: "chair" } }] });
    expect(h.undo()?.edits[0]?.after).toEqual({ category: "sofa" });
    expect(h.canRedo).toBe(true);
    expect(h.redo()?.edits[0]?.after).toEqual({ category: "chair" });
    h.undo();
    h.push({ label: "box", edits: [{ objectId: "o", before: { bbox: [0, 0, 1, 1] }, after: { bbox: [0, 0, 0.5, 0.5] } }] });
    expect(h.canRedo).toBe(false);
    expect(h.undo()?.label).toBe("undo box");
    expect(h.undo()).toBeNull();
  });
});
