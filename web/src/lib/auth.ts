/** The credential the app sends: a JWT (as a bearer token) or an API key (X-API-Key),
 * typed once on the sign-in page or carried in a `#token=` link, then kept in this
 * browser's localStorage. A link's fragment never reaches a server (no access log has it),
 * and the app drops it from the address bar as soon as it has read it. */
const KEY = "modomo.credential";

type Listener = () => void;
const listeners = new Set<Listener>();

export function credential(): string | null {
  return localStorage.getItem(KEY);
}

export function signIn(value: string): void {
  localStorage.setItem(KEY, value.trim());
  listeners.forEach((l) => l());
}

export function signOut(): void {
  localStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function onCredentialChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Take a `#token=...` from the address (a demo's sign-in link) and forget the fragment. */
export function adoptFragmentToken(): void {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match?.[1]) return;
  signIn(decodeURIComponent(match[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search);
}

export function authHeaders(): Record<string, string> {
  const value = credential();
  if (!value) return {};
  return value.startsWith("mdk_") ? { "X-API-Key": value } : { Authorization: `Bearer ${value}` };
}

export interface Identity {
  subject: string;
  role: string;
  expires: Date | null;
}

/** Who the credential says the caller is: a JWT's claims (unverified: display only), or
 * the key id of an API key. */
export function identity(value: string | null = credential()): Identity | null {
  if (!value) return null;
  if (value.startsWith("mdk_")) {
    return { subject: `apikey:${value.slice(4).split("_")[0] ?? ""}`, role: "key", expires: null };
  }
  const part = value.split(".")[1];
  if (!part) return { subject: "?", role: "?", expires: null };
  try {
    const claims = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))) as {
      sub?: string;
      role?: string;
      exp?: number;
    };
    return {
      subject: claims.sub ?? "?",
      role: claims.role ?? "?",
      expires: claims.exp ? new Date(claims.exp * 1000) : null,
    };
  } catch {
    return { subject: "?", role: "?", expires: null };
  }
}
