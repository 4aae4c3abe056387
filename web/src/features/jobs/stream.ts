/** Follows a job's event stream and resumes by itself: after a network blip, an API restart
 * or a stream the server ended early, it asks for a fresh ticket for the stream right after
 * the last entry it has, and reopens it there, so nothing is missed and nothing repeats.
 * This is the one place that knows about resumption. Browser APIs are injected, so the
 * logic is unit-tested without a browser. */
import { JobLog } from "./events";

export interface EventSourceLike {
  addEventListener(type: string, listener: (event: MessageEvent) => void): void;
  close(): void;
  onopen: ((event: Event) => void) | null;
  onerror: ((event: Event) => void) | null;
}

export type Status = "connecting" | "live" | "reconnecting" | "ended" | "gone";

export interface StreamDeps {
  /** A URL of the stream after entry ``after`` (from the start when null) with a fresh
   * ticket; rejects with {status: 404} when there is no such stream. */
  ticketUrl: (jobId: string, after: string | null) => Promise<string>;
  open: (url: string) => EventSourceLike;
  eventTypes: readonly string[];
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

const BACKOFF_MS = [250, 500, 1000, 2000, 3000];

export class JobStream {
  readonly log = new JobLog();
  status: Status = "connecting";
  reconnects = 0;
  private source: EventSourceLike | null = null;
  private timer: unknown = null;
  private failures = 0;
  private stopped = false;
  private version = 0;
  private generation = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly jobId: string,
    private readonly deps: StreamDeps,
  ) {}

  /** A number that changes whenever anything here does (for useSyncExternalStore). */
  snapshot = (): number => this.version;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  start(): void {
    this.stopped = false;
    this.generation += 1;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.generation += 1;
    this.source?.close();
    this.source = null;
    if (this.timer !== null) (this.deps.clearTimer ?? clearTimeout)(this.timer as number);
    this.timer = null;
  }

  private changed(): void {
    this.version += 1;
    this.listeners.forEach((l) => l());
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const generation = this.generation;
    let url: string;
    try {
      url = await this.deps.ticketUrl(this.jobId, this.log.lastId);
      if (generation !== this.generation) return; // stopped (and maybe restarted) meanwhile
    } catch (error) {
      if (generation !== this.generation) return;
      if ((error as { status?: number }).status === 404) {
        this.status = this.log.done ? "ended" : "gone";
        this.changed();
        return;
      }
      this.retry();
      return;
    }
    const source = this.deps.open(url);
    this.source = source;
    const onEvent = (event: MessageEvent) => this.receive(event);
    for (const type of this.deps.eventTypes) source.addEventListener(type, onEvent);
    source.addEventListener("message", onEvent);
    source.onopen = () => {
      this.failures = 0;
      this.status = "live";
      this.changed();
    };
    source.onerror = () => {
      // Never let EventSource retry on its own: its ticket may have expired by now.
      source.close();
      if (this.source === source) this.source = null;
      if (this.stopped) return;
      if (this.log.settled()) {
        this.status = "ended";
        this.changed();
      } else this.retry();
    };
  }

  private retry(): void {
    if (this.stopped) return;
    this.status = "reconnecting";
    this.reconnects += 1;
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)] ?? 3000;
    this.failures += 1;
    this.changed();
    this.timer = (this.deps.setTimer ?? setTimeout)(() => {
      this.timer = null;
      void this.connect();
    }, delay);
  }

  private receive(event: MessageEvent): void {
    const id = event.lastEventId;
    if (!id) return;
    if (this.log.accept(id, event.type, String(event.data))) {
      if (this.log.done) {
        this.status = "ended";
        this.source?.close();
        this.source = null;
      }
      this.changed();
    }
  }
}
