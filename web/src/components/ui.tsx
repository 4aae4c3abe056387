/** Small shared pieces of UI. */
import type { ReactNode } from "react";
import { ApiError } from "../lib/api/client";

const STATUS_TONE: Record<string, string> = {
  failed: "red",
  partial: "amber",
  ok: "green",
  succeeded: "green",
  running: "blue",
  queued: "grey",
  registered: "grey",
};

/** A status badge: red for failed, amber for partial, as the specification asks. */
export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge tone-${STATUS_TONE[status] ?? "grey"}`} data-status={status}>
      {status}
    </span>
  );
}

export function Progress({ value, label }: { value: number; label?: string }) {
  const clamped = Math.max(0, Math.min(1, value));
  return (
    <div className="progress" role="progressbar" aria-valuenow={Math.round(clamped * 100)} aria-valuemin={0} aria-valuemax={100} aria-label={label}>
      <div className="progress-fill" style={{ width: `${clamped * 100}%` }} />
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? `${error.detail} (${error.status})` : String(error);
  return (
    <p className="error" role="alert">
      {text}
    </p>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p className="muted">{what}…</p>;
}

export function Kbd({ children }: { children: ReactNode }) {
  return <kbd>{children}</kbd>;
}

export function Card({ title, children, actions }: { title?: ReactNode; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card">
      {(title || actions) && (
        <header className="card-head">
          {title && <h2>{title}</h2>}
          {actions}
        </header>
      )}
      {children}
    </section>
  );
}
