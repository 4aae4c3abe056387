/** Every object of the scene in a sortable, virtualised table: only the rows in view exist,
 * so a thousand objects cost what thirty do. */
import { useVirtualizer } from "@tanstack/react-virtual";
import { memo, useEffect, useRef } from "react";
import type { ObjectOut, TermOut } from "../../lib/api/types";
import { rgbCss } from "../../lib/colors";
import { conf } from "../../lib/format";
import { nameOf } from "../../lib/taxonomies";

export type SortKey = "confidence" | "category" | "margin";
export interface Sort {
  key: SortKey;
  dir: 1 | -1;
}

interface Props {
  objects: ObjectOut[];
  colors: Map<string, [number, number, number]>;
  selected: ReadonlySet<string>;
  verdicts: ReadonlyMap<string, string>;
  categories: TermOut[] | undefined;
  sort: Sort;
  focus: string | null;
  onSort: (key: SortKey) => void;
  onPick: (objectId: string, additive: boolean) => void;
}

const ROW = 30;

export function ObjectList({ objects, colors, selected, verdicts, categories, sort, focus, onSort, onPick }: Props) {
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useVirtualizer({ count: objects.length, getScrollElement: () => scroller.current, estimateSize: () => ROW, overscan: 8 });
  const focusIndex = focus ? objects.findIndex((o) => o.object_id === focus) : -1;
  useEffect(() => {
    if (focusIndex >= 0) rows.scrollToIndex(focusIndex, { align: "auto" });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the virtualiser is a new object each render
  }, [focusIndex]);
  const arrow = (key: SortKey) => (sort.key === key ? (sort.dir === 1 ? " ▲" : " ▼") : "");
  return (
    <div className="objects">
      <div className="objects-head">
        <span />
        <button type="button" className="link" onClick={() => onSort("category")} data-sort="category">
          Category{arrow("category")}
        </button>
        <button type="button" className="link num" onClick={() => onSort("confidence")} data-sort="confidence">
          Conf.{arrow("confidence")}
        </button>
        <span title="What YOLO and GroundingDINO each called it">Detectors</span>
        <button type="button" className="link num" onClick={() => onSort("margin")} data-sort="margin" title="Top material score minus the runner-up's">
          Margin{arrow("margin")}
        </button>
        <span>Review</span>
      </div>
      <div className="objects-body" ref={scroller} data-testid="object-list">
        <div style={{ height: rows.getTotalSize(), position: "relative" }}>
          {rows.getVirtualItems().map((row) => {
            const o = objects[row.index]!;
            return (
              <Row
                key={o.object_id}
                o={o}
                top={row.start}
                color={colors.get(o.object_id)}
                isSelected={selected.has(o.object_id)}
                verdict={verdicts.get(o.object_id)}
                categoryName={nameOf(categories, o.category)}
                onPick={onPick}
              />
            );
          })}
        </div>
      </div>
    </div>
  );
}

const Row = memo(function Row({
  o,
  top,
  color,
  isSelected,
  verdict,
  categoryName,
  onPick,
}: {
  o: ObjectOut;
  top: number;
  color: [number, number, number] | undefined;
  isSelected: boolean;
  verdict: string | undefined;
  categoryName: string;
  onPick: (objectId: string, additive: boolean) => void;
}) {
  const disagree = o.detect_category && o.label_category && o.detect_category !== o.label_category;
  return (
    <div
      className={`object-row${isSelected ? " selected" : ""}`}
      style={{ transform: `translateY(${top}px)`, height: ROW }}
      onClick={(e) => onPick(o.object_id, e.shiftKey || e.metaKey || e.ctrlKey)}
      data-object={o.object_id}
      data-selected={isSelected}
      aria-selected={isSelected}
      role="row"
    >
      <span className="dot" style={{ background: color ? rgbCss(color) : "#ccc" }} />
      <span className="cat">
        {categoryName}
        {o.corrected_by ? <span className="mark" title={`corrected by ${o.corrected_by}`}>✎</span> : null}
      </span>
      <span className="num" data-confidence={o.confidence}>
        {conf(o.confidence)}
      </span>
      <span className={disagree ? "disagree" : "muted small"} title={`YOLO: ${o.detect_category ?? "—"} · GroundingDINO: ${o.label_category ?? "—"}`}>
        {disagree ? `${o.detect_category} ≠ ${o.label_category}` : (o.label_category ?? o.detect_category ?? "—")}
      </span>
      <span className="num">{conf(o.material_margin)}</span>
      <span>{verdict ? <span className={`badge verdict-${verdict}`}>{verdict}</span> : null}</span>
    </div>
  );
});
