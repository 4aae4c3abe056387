/** What a job's event stream adds up to, folded one event at a time, and the rule that makes
 * resumption exact: an entry id at or below the last one seen is a repeat and is dropped.
 * Pure: no browser, no React (unit-tested in events.test.ts). */

export interface JobEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/** Redis stream ids ("<ms>-<seq>") in stream order. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

export const STAGE_OF: Record<string, string> = {
  scene_classified: "scene",
  styles_classified: "style",
  objects_detected: "detect",
  masks_segmented: "segment",
  objects_labelled: "label",
  depth_estimated: "depth",
  materials_classified: "material",
  scene_captioned: "caption",
  palette_extracted: "palette",
};

type SceneStatus = "queued" | "running" | "ok" | "partial" | "failed";

export interface SceneError {
  id: string;
  sceneId: string;
  attempt: number;
  error: string;
  stage: string;
  willRetry: boolean;
}

export class JobLog {
  readonly events: JobEvent[] = [];
  lastId: string | null = null;
  repeats = 0;
  total = 0;
  readonly scenes = new Map<string, SceneStatus>();
  readonly stageMs = new Map<string, number[]>();
  readonly errors: SceneError[] = [];
  done: { status: string; ok: number; partial: number; failed: number } | null = null;

  /** Fold one entry; false (and nothing changes) when it is not past the last id seen. */
  accept(id: string, type: string, raw: string): boolean {
    if (this.lastId !== null && compareIds(id, this.lastId) <= 0) {
      this.repeats += 1;
      return false;
    }
    let data: Record<string, unknown> = {};
    try {
      data = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      data = {};
    }
    this.lastId = id;
    this.events.push({ id, type, data });
    this.fold(type, data);
    return true;
  }

  private fold(type: string, data: Record<string, unknown>): void {
    const scene = typeof data.scene_id === "string" ? data.scene_id : "";
    switch (type) {
      case "job_created": {
        const ids = Array.isArray(data.scene_ids) ? (data.scene_ids as string[]) : [];
        this.total = new Set(ids).size;
        for (const s of ids) if (!this.scenes.has(s)) this.scenes.set(s, "queued");
        break;
      }
      case "scene_queued":
      case "scene_requeued":
        this.scenes.set(scene, "queued");
        break;
      case "scene_start":
        if (!isFinal(this.scenes.get(scene))) this.scenes.set(scene, "running");
        break;
      case "scene_done":
        this.scenes.set(scene, data.status === "partial" ? "partial" : "ok");
        break;
      case "scene_failed": {
        const willRetry = data.will_retry === true;
        this.errors.push({
          id: this.lastId ?? "",
          sceneId: scene,
          attempt: Number(data.attempt ?? 1),
          error: String(data.error ?? ""),
          stage: String(data.stage ?? ""),
          willRetry,
        });
        if (!willRetry) this.scenes.set(scene, "failed");
        break;
      }
      case "scene_dead":
        this.scenes.set(scene, "failed");
        break;
      case "job_done":
        this.done = {
          status: String(data.status ?? ""),
          ok: Number(data.ok ?? 0),
          partial: Number(data.partial ?? 0),
          failed: Number(data.failed ?? 0),
        };
        break;
      default: {
        const stage = STAGE_OF[type];
        if (stage && typeof data.duration_ms === "number") {
          const list = this.stageMs.get(stage) ?? [];
          list.push(data.duration_ms);
          this.stageMs.set(stage, list);
        }
      }
    }
  }

  /** Every scene of the job has its outcome (a stream without job_done ends there). */
  settled(): boolean {
    if (this.done) return true;
    if (this.total === 0) return false;
    const c = this.counts();
    return c.queued === 0 && c.running === 0;
  }

  counts(): Record<SceneStatus, number> {
    const out: Record<SceneStatus, number> = { queued: 0, running: 0, ok: 0, partial: 0, failed: 0 };
    for (const status of this.scenes.values()) out[status] += 1;
    return out;
  }
}

const isFinal = (s: SceneStatus | undefined) => s === "ok" || s === "partial" || s === "failed";

/** The ``q``-quantile of ``values`` (linear interpolation, as PostgreSQL's percentile_cont). */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] ?? 0;
  const b = sorted[hi] ?? 0;
  return a + (b - a) * (pos - lo);
}
