import { describe, expect, it } from "vitest";
import { JobLog, compareIds, quantile } from "./events";
import { JobStream, type EventSourceLike } from "./stream";

describe("compareIds", () => {
  it("orders by milliseconds, then sequence, beyond float precision", () => {
    expect(compareIds("1-0", "1-1")).toBe(-1);
    expect(compareIds("2-0", "1-9")).toBe(1);
    expect(compareIds("1700000000000-5", "1700000000000-5")).toBe(0);
    expect(compareIds("9007199254740993-0", "9007199254740992-0")).toBe(1);
  });
});

describe("JobLog", () => {
  it("drops repeats and folds counts, timings and errors", () => {
    const log = new JobLog();
    expect(log.accept("1-0", "job_created", JSON.stringify({ scene_ids: ["a", "b", "a"] }))).toBe(true);
    expect(log.accept("1-0", "job_created", "{}")).toBe(false);
    log.accept("2-0", "scene_start", JSON.stringify({ scene_id: "a" }));
    log.accept("3-0", "objects_detected", JSON.stringify({ scene_id: "a", duration_ms: 12 }));
    log.accept("4-0", "scene_done", JSON.stringify({ scene_id: "a", status: "partial" }));
    log.accept("5-0", "scene_failed", JSON.stringify({ scene_id: "b", error: "boom", will_retry: true }));
    expect(log.accept("4-9", "scene_done", "{}")).toBe(false);
    expect(log.repeats).toBe(2);
    expect(log.total).toBe(2);
    expect(log.counts()).toMatchObject({ partial: 1, queued: 1, failed: 0 });
    expect(log.settled()).toBe(false);
    log.accept("6-0", "scene_dead", JSON.stringify({ scene_id: "b" }));
    expect(log.counts().failed).toBe(1);
    expect(log.settled()).toBe(true);
    expect(log.stageMs.get("detect")).toEqual([12]);
    expect(log.errors.map((e) => [e.sceneId, e.willRetry])).toEqual([["b", true]]);
  });

  it("computes quantiles like percentile_cont", () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([], 0.9)).toBe(0);
    expect(quantile([10], 0.95)).toBe(10);
  });
});

class FakeSource implements EventSourceLike {
  listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  onopen: ((e: Event) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  addEventListener(type: string, l: (e: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]);
  }
  close() {
    this.closed = true;
  }
  emit(id: string, type: string, data: object = {}) {
    for (const l of this.listeners.get(type) ?? []) l(new MessageEvent(type, { data: JSON.stringify(data), lastEventId: id }));
  }
}

describe("JobStream", () => {
  it("reopens after an error right after the last entry, with a fresh ticket, and never repeats", async () => {
    const sources: FakeSource[] = [];
    const timers: (() => void)[] = [];
    let tickets = 0;
    const stream = new JobStream("job", {
      ticketUrl: async (_job, after) => `/jobs/job/events?ticket=t${++tickets}${after ? `@${after}` : ""}`,
      open: (url) => {
        const s = new FakeSource(url);
        sources.push(s);
        return s;
      },
      eventTypes: ["job_created", "scene_done", "job_done"],
      setTimer: (fn) => timers.push(fn),
      clearTimer: () => undefined,
    });
    stream.start();
    await Promise.resolve();
    await Promise.resolve();
    const first = sources[0]!;
    expect(first.url).toBe("/jobs/job/events?ticket=t1");
    first.onopen?.(new Event("open"));
    expect(stream.status).toBe("live");
    first.emit("1-0", "job_created", { scene_ids: ["a"] });
    first.onerror?.(new Event("error")); // the API restarted
    expect(first.closed).toBe(true);
    expect(stream.status).toBe("reconnecting");
    timers.shift()!();
    await Promise.resolve();
    await Promise.resolve();
    const second = sources[1]!;
    expect(second.url).toBe("/jobs/job/events?ticket=t2@1-0"); // the ticket resumes after 1-0
    second.emit("1-0", "job_created", { scene_ids: ["a"] }); // a repeat is dropped
    second.emit("2-0", "scene_done", { scene_id: "a", status: "ok" });
    second.emit("3-0", "job_done", { status: "succeeded", ok: 1 });
    expect(stream.log.events.map((e) => e.id)).toEqual(["1-0", "2-0", "3-0"]);
    expect(stream.log.repeats).toBe(1);
    expect(stream.status).toBe("ended");
    expect(second.closed).toBe(true);
    expect(stream.reconnects).toBe(1);
  });

  it("stops when the job's stream is gone (404)", async () => {
    const stream = new JobStream("job", {
      ticketUrl: async () => {
        throw Object.assign(new Error("gone"), { status: 404 });
      },
      open: () => {
        throw new Error("never opened");
      },
      eventTypes: [],
    });
    stream.start();
    await Promise.resolve();
    await Promise.resolve();
    expect(stream.status).toBe("gone");
  });
});
