/** Scene: the photo with every object's mask and box, the scene's results, and corrections
 * at the speed of a keyboard: number keys pick a category, a box is two clicks, undo and
 * redo are corrections too, and approve/reject work on a whole selection. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { Card, ErrorNote, Kbd, Loading, StatusBadge } from "../../components/ui";
import type { ObjectOut, Verdict } from "../../lib/api/types";
import { objectColor } from "../../lib/colors";
import { conf, short } from "../../lib/format";
import { nameOf, useTaxonomies } from "../../lib/taxonomies";
import { useCorrections, useReviews, useScene, useVerdicts } from "./api";
import type { Box } from "./geometry";
import { type Fields, History, type Step } from "./history";
import { fetchBitmap, Limiter, maskSprite, type Sprite } from "./masks";
import { ObjectList, type Sort, type SortKey } from "./ObjectList";
import { SceneCanvas } from "./SceneCanvas";
import { SceneInfo, modelText } from "./SceneInfo";

const HOTKEYS = 9;

function sorted(objects: ObjectOut[], sort: Sort): ObjectOut[] {
  const value = (o: ObjectOut): number | string =>
    sort.key === "confidence" ? o.confidence : sort.key === "margin" ? (o.material_margin ?? 2) : o.category;
  return [...objects].sort((a, b) => {
    const x = value(a);
    const y = value(b);
    return (x < y ? -1 : x > y ? 1 : a.object_id < b.object_id ? -1 : 1) * sort.dir;
  });
}

function fieldsOf(o: ObjectOut, keys: (keyof Fields)[]): Fields {
  const out: Fields = {};
  if (keys.includes("category")) out.category = o.category;
  if (keys.includes("bbox")) out.bbox = [...o.bbox] as Box;
  if (keys.includes("materials")) out.materials = o.materials.map((m) => m.code);
  return out;
}

export function ScenePage() {
  const { sceneId = "" } = useParams();
  const [search] = useSearchParams();
  const scene = useScene(sceneId);
  const reviews = useReviews(sceneId);
  const taxonomies = useTaxonomies();
  const corrections = useCorrections(sceneId);
  const verdictsMutation = useVerdicts(sceneId);

  const [selected, setSelected] = useState<ReadonlySet<string>>(() => new Set(search.get("object") ? [search.get("object")!] : []));
  const [focus, setFocus] = useState<string | null>(search.get("object"));
  const [hidden, setHidden] = useState<ReadonlySet<string>>(new Set());
  const [masksOn, setMasksOn] = useState(true);
  const [labelsOn, setLabelsOn] = useState(true);
  const [showDepth, setShowDepth] = useState(false);
  const [mode, setMode] = useState<"select" | "box">("select");
  const [sort, setSort] = useState<Sort>({ key: "confidence", dir: 1 });
  const [pending, setPending] = useState<ReadonlyMap<string, Verdict>>(new Map());
  const [note, setNote] = useState("");
  const [help, setHelp] = useState(false);
  const [status, setStatus] = useState("");
  const history = useRef(new History());
  const [, setHistoryVersion] = useState(0);
  const noteRef = useRef<HTMLInputElement>(null);

  const data = scene.data;
  const objects = useMemo(() => data?.objects ?? [], [data]);
  const width = data?.width ?? 0;
  const height = data?.height ?? 0;
  const ordered = useMemo(() => sorted(objects, sort), [objects, sort]);
  // Keyed by the set of objects, not their contents: a correction changes neither colours
  // nor which masks exist, so neither repaints.
  const idKey = objects.map((o) => `${o.object_id}:${o.mask_key ?? ""}`).join("|");
  const colors = useMemo(() => {
    const ids = objects.map((o) => o.object_id).sort();
    return new Map(ids.map((id, i) => [id, objectColor(i)]));
    // eslint-disable-next-line react-hooks/exhaustive-deps -- see idKey
  }, [idKey]);
  const maskOrder = useMemo(
    () => objects.filter((o) => o.mask_url).map((o) => o.object_id),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- see idKey
    [idKey],
  );
  const verdicts = useMemo(() => {
    const out = new Map<string, string>();
    for (const r of [...(reviews.data ?? [])].reverse()) if (r.object_id) out.set(r.object_id, r.verdict);
    for (const [id, v] of pending) out.set(id, v);
    return out;
  }, [reviews.data, pending]);
  const hotbar = useMemo(() => {
    const counts = new Map<string, number>();
    for (const o of objects) counts.set(o.category, (counts.get(o.category) ?? 0) + 1);
    const frequent = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([c]) => c);
    const rest = (taxonomies.data?.category ?? []).map((t) => t.code).filter((c) => !counts.has(c));
    return [...frequent, ...rest].slice(0, HOTKEYS);
  }, [objects, taxonomies.data]);

  // --- images: the photo, the depth map and one sprite per mask, loaded once per key ------
  const [photo, setPhoto] = useState<ImageBitmap | null>(null);
  const [depth, setDepth] = useState<ImageBitmap | null>(null);
  const sprites = useRef(new Map<string, Sprite>());
  const [spritesVersion, setSpritesVersion] = useState(0);
  const [maskErrors, setMaskErrors] = useState(0);
  const photoKey = data ? `${data.scene_id}:${data.r2_key_original}` : "";
  useEffect(() => {
    if (!data) return;
    const abort = new AbortController();
    fetchBitmap(data.original_url, undefined, abort.signal).then(setPhoto, () => undefined);
    return () => abort.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- a new presigned URL is the same photo
  }, [photoKey]);
  useEffect(() => {
    if (!showDepth || depth || !data?.depth_url) return;
    fetchBitmap(data.depth_url).then(setDepth, () => undefined);
  }, [showDepth, depth, data?.depth_url]);
  const maskKey = objects.map((o) => o.mask_key ?? "").join("|");
  useEffect(() => {
    if (!data || !width || !height) return;
    const abort = new AbortController();
    const limiter = new Limiter(6);
    let frame = 0;
    const bump = () => {
      if (!frame) frame = requestAnimationFrame(() => {
        frame = 0;
        setSpritesVersion((v) => v + 1);
      });
    };
    const wanted = data.objects.filter((o) => o.mask_url && !sprites.current.has(o.object_id));
    let left = wanted.length;
    if (left === 0 && data.objects.some((o) => o.mask_url)) performance.mark("scene-masks-drawn");
    for (const o of wanted) {
      void limiter
        .run(() => maskSprite(o.mask_url!, o.bbox, width, height, colors.get(o.object_id) ?? [255, 255, 255], abort.signal))
        .then(
          (sprite) => {
            sprites.current.set(o.object_id, sprite);
            bump();
          },
          () => {
            if (!abort.signal.aborted) setMaskErrors((n) => n + 1);
          },
        )
        .finally(() => {
          left -= 1;
          if (left === 0 && !abort.signal.aborted) requestAnimationFrame(() => performance.mark("scene-masks-drawn"));
        });
    }
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- keyed by the masks, not their URLs
  }, [maskKey, width, height]);

  // --- actions --------------------------------------------------------------------------
  const byId = useMemo(() => new Map(objects.map((o) => [o.object_id, o])), [objects]);
  const apply = useCallback(
    (step: Step, record: boolean) => {
      if (step.edits.length === 0) return;
      if (record) history.current.push(step);
      setHistoryVersion((v) => v + 1);
      setStatus(step.label);
      corrections.mutate(step.edits.map((e) => ({ objectId: e.objectId, fields: e.after })));
    },
    [corrections],
  );
  const correct = useCallback(
    (ids: Iterable<string>, label: string, change: (o: ObjectOut) => Fields) => {
      const edits = [];
      for (const id of ids) {
        const o = byId.get(id);
        if (!o) continue;
        const after = change(o);
        edits.push({ objectId: id, before: fieldsOf(o, Object.keys(after) as (keyof Fields)[]), after });
      }
      apply({ label, edits }, true);
    },
    [apply, byId],
  );
  const undo = useCallback(() => {
    const step = history.current.undo();
    if (step) apply(step, false);
  }, [apply]);
  const redo = useCallback(() => {
    const step = history.current.redo();
    if (step) apply(step, false);
  }, [apply]);
  const judge = useCallback(
    (verdict: Verdict, ids: string[], text = "") => {
      if (ids.length === 0) return;
      setPending((old) => new Map([...old, ...ids.map((id) => [id, verdict] as const)]));
      setStatus(`${verdict} ${ids.length} object${ids.length > 1 ? "s" : ""}`);
      verdictsMutation.mutate(ids.map((objectId) => ({ objectId, verdict, note: text })), {
        onError: () => setPending((old) => new Map([...old].filter(([id]) => !ids.includes(id)))),
      });
    },
    [verdictsMutation],
  );

  const pick = useCallback((objectId: string | null, additive: boolean) => {
    setFocus(objectId);
    setSelected((old) => {
      if (!objectId) return additive ? old : new Set();
      if (!additive) return new Set([objectId]);
      const next = new Set(old);
      if (next.has(objectId)) next.delete(objectId);
      else next.add(objectId);
      return next;
    });
  }, []);
  const onSort = useCallback((key: SortKey) => setSort((s) => ({ key, dir: s.key === key ? (-s.dir as 1 | -1) : 1 })), []);
  const onBox = useCallback(
    (box: Box) => {
      const [id] = [...selected];
      if (id) correct([id], "redraw box", () => ({ bbox: box }));
      setMode("select");
    },
    [selected, correct],
  );
  const onMove = useCallback((id: string, box: Box) => correct([id], "move box", () => ({ bbox: box })), [correct]);

  // --- keyboard -------------------------------------------------------------------------
  const keys = useRef<(event: KeyboardEvent) => void>(() => undefined);
  keys.current = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement | null;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const mod = event.ctrlKey || event.metaKey;
    const chosen = [...selected];
    const move = (delta: number) => {
      const index = ordered.findIndex((o) => o.object_id === focus);
      const next = ordered[Math.max(0, Math.min(ordered.length - 1, index + delta))];
      if (next) pick(next.object_id, false);
    };
    let handled = true;
    if (mod && event.key.toLowerCase() === "z") (event.shiftKey ? redo : undo)();
    else if (mod && event.key.toLowerCase() === "y") redo();
    else if (mod && event.key.toLowerCase() === "a") setSelected(new Set(ordered.map((o) => o.object_id)));
    else if (mod) handled = false;
    else if (/^[1-9]$/.test(event.key)) {
      const code = hotbar[Number(event.key) - 1];
      if (code && chosen.length) correct(chosen, `category ${code}`, () => ({ category: code }));
    } else if (event.key === "a") judge("approve", chosen);
    else if (event.key === "r") judge("reject", chosen);
    else if (event.key === "f") noteRef.current?.focus();
    else if (event.key === "b") setMode((m) => (m === "box" || selected.size !== 1 ? "select" : "box"));
    else if (event.key === "m") setMasksOn((v) => !v);
    else if (event.key === "l") setLabelsOn((v) => !v);
    else if (event.key === "d") setShowDepth((v) => !v);
    else if (event.key === "h")
      setHidden((old) => {
        const next = new Set(old);
        for (const id of chosen) if (next.has(id)) next.delete(id); else next.add(id);
        return next;
      });
    else if (event.key === "j" || event.key === "ArrowDown") move(1);
    else if (event.key === "k" || event.key === "ArrowUp") move(-1);
    else if (event.key === "Escape") {
      if (mode === "box") setMode("select");
      else pick(null, false);
    } else if (event.key === "?") setHelp((h) => !h);
    else handled = false;
    if (handled) event.preventDefault();
  };
  useEffect(() => {
    const listener = (event: KeyboardEvent) => keys.current(event);
    window.addEventListener("keydown", listener);
    return () => window.removeEventListener("keydown", listener);
  }, []);

  if (scene.isPending) return <main><Loading what="Loading the scene" /></main>;
  if (!data) return <main><ErrorNote error={scene.error} /></main>;

  const one = selected.size === 1 ? byId.get([...selected][0]!) : undefined;
  const maskCount = objects.filter((o) => o.mask_url).length;
  return (
    <main className="scene-page">
      <p className="crumbs">
        <Link to="/">Datasets</Link> / <Link to={`/datasets/${data.dataset_id}/scenes`}>scenes</Link> /
      </p>
      <h1>
        {data.filename || short(data.scene_id)} <StatusBadge status={data.status} />
      </h1>
      <div className="scene-layout">
        <div className="scene-main">
          <div className="toolbar" role="toolbar">
            <button type="button" onClick={() => setMasksOn((v) => !v)} aria-pressed={masksOn}>Masks <Kbd>m</Kbd></button>
            <button type="button" onClick={() => setLabelsOn((v) => !v)} aria-pressed={labelsOn}>Labels <Kbd>l</Kbd></button>
            <button type="button" onClick={() => setMode((m) => (m === "box" ? "select" : "box"))} disabled={selected.size !== 1} aria-pressed={mode === "box"}>
              Redraw box <Kbd>b</Kbd>
            </button>
            <button type="button" onClick={undo} disabled={!history.current.canUndo}>Undo <Kbd>⌃Z</Kbd></button>
            <button type="button" onClick={redo} disabled={!history.current.canRedo}>Redo <Kbd>⌃⇧Z</Kbd></button>
            <button type="button" onClick={() => setHelp((h) => !h)}>Keys <Kbd>?</Kbd></button>
            <span className="muted small" data-testid="mask-status">
              masks {sprites.current.size}/{maskCount}
              {maskErrors ? ` (${maskErrors} failed)` : ""}
            </span>
            <span className="status small" data-testid="status" role="status">{status}</span>
          </div>
          {width > 0 && height > 0 ? (
            <SceneCanvas
              width={width}
              height={height}
              photo={photo}
              depth={depth}
              showDepth={showDepth}
              objects={objects}
              maskOrder={maskOrder}
              colors={colors}
              sprites={sprites.current}
              spritesVersion={spritesVersion}
              selected={selected}
              hidden={hidden}
              masksOn={masksOn}
              labelsOn={labelsOn}
              mode={mode}
              onPick={pick}
              onBox={onBox}
              onMove={onMove}
              hint={mode === "box" ? "Click one corner of the box, then the opposite corner. Esc cancels." : null}
            />
          ) : (
            <img className="plain" src={data.original_url} alt="scene" />
          )}
          <div className="hotbar" data-testid="hotbar">
            {hotbar.map((code, i) => (
              <button
                type="button"
                key={code}
                data-code={code}
                disabled={selected.size === 0}
                onClick={() => correct(selected, `category ${code}`, () => ({ category: code }))}
              >
                <Kbd>{i + 1}</Kbd> {nameOf(taxonomies.data?.category, code)}
              </button>
            ))}
          </div>
        </div>
        <aside className="scene-side">
          <Card title={`Objects (${objects.length})`}>
            <ObjectList
              objects={ordered}
              colors={colors}
              selected={selected}
              verdicts={verdicts}
              categories={taxonomies.data?.category}
              sort={sort}
              focus={focus}
              onSort={onSort}
              onPick={pick}
            />
            <div className="bulk">
              <span className="muted small">{selected.size} selected</span>
              <button type="button" onClick={() => judge("approve", [...selected])} disabled={!selected.size}>Approve <Kbd>a</Kbd></button>
              <button type="button" onClick={() => judge("reject", [...selected])} disabled={!selected.size}>Reject <Kbd>r</Kbd></button>
              <form
                className="fix"
                onSubmit={(e) => {
                  e.preventDefault();
                  judge("fix", [...selected], note);
                  setNote("");
                  noteRef.current?.blur();
                }}
              >
                <input ref={noteRef} name="note" placeholder="note for a fix (f)" value={note} onChange={(e) => setNote(e.target.value)} maxLength={2000} />
                <button type="submit" disabled={!selected.size}>Fix</button>
              </form>
            </div>
            <ErrorNote error={corrections.error ?? verdictsMutation.error} />
          </Card>
          {one && <ObjectDetails o={one} />}
          <Card title="Scene">
            <SceneInfo scene={data} sceneTypes={taxonomies.data?.scene_type} styles={taxonomies.data?.style} showDepth={showDepth} onDepth={() => setShowDepth((v) => !v)} />
          </Card>
        </aside>
      </div>
      {help && <Help onClose={() => setHelp(false)} />}
    </main>
  );
}

function ObjectDetails({ o }: { o: ObjectOut }) {
  const taxonomies = useTaxonomies();
  return (
    <Card title="Selected object">
      <dl className="details" data-testid="object-details" data-object={o.object_id}>
        <dt>Category</dt>
        <dd data-testid="selected-category">{nameOf(taxonomies.data?.category, o.category)}</dd>
        <dt>Confidence</dt>
        <dd>{conf(o.confidence)}</dd>
        <dt>YOLO / GroundingDINO</dt>
        <dd>
          {o.detect_category ?? "—"} / {o.label_category ?? "—"}
        </dd>
        <dt>Materials</dt>
        <dd>{o.materials.map((m) => `${nameOf(taxonomies.data?.material, m.code)} ${m.score.toFixed(2)}`).join(", ") || "—"}</dd>
        <dt>Box</dt>
        <dd className="small">{o.bbox.map((v) => v.toFixed(3)).join(", ")}</dd>
        <dt>Model</dt>
        <dd>
          {modelText(o.model)} ({o.source})
        </dd>
        {o.corrected_by && (
          <>
            <dt>Corrected by</dt>
            <dd>{o.corrected_by}</dd>
          </>
        )}
      </dl>
    </Card>
  );
}

function Help({ onClose }: { onClose: () => void }) {
  const rows: [string, string][] = [
    ["click, ⇧ click", "select an object, add to the selection"],
    ["1 … 9", "set the selected objects' category (the bar under the photo)"],
    ["a / r", "approve / reject the selection"],
    ["f", "write a note, Enter: mark the selection to fix"],
    ["b, click, click", "redraw the selected object's box from two corners"],
    ["drag", "move the selected object's box"],
    ["⌃Z / ⌃⇧Z", "undo / redo a correction (each is sent as a correction)"],
    ["j k ↑ ↓", "next / previous object in the list"],
    ["⌃A", "select every object"],
    ["m / h / l / d", "all masks / selected masks / labels / depth map"],
    ["Esc", "cancel, clear the selection"],
  ];
  return (
    <div className="modal" role="dialog" aria-label="Keyboard shortcuts" onClick={onClose}>
      <div className="card">
        <h2>Keyboard</h2>
        <table className="table">
          <tbody>
            {rows.map(([k, v]) => (
              <tr key={k}>
                <td>
                  <Kbd>{k}</Kbd>
                </td>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
