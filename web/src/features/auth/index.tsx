/** Sign-in: a JWT or an API key typed once; a `#token=` link signs in by itself. */
import { useQuery } from "@tanstack/react-query";
import { useState, useSyncExternalStore, type FormEvent, type ReactNode } from "react";
import { Navigate, useLocation, useNavigate } from "react-router";
import { credential, identity, onCredentialChange, signIn, signOut } from "../../lib/auth";
import { api, unwrap } from "../../lib/api/client";
import type { MeOut } from "../../lib/api/types";
import { apiUrl, setApiUrl } from "../../lib/config";

export function useCredential(): string | null {
  return useSyncExternalStore(onCredentialChange, credential);
}

export function RequireAuth({ children }: { children: ReactNode }) {
  const value = useCredential();
  const location = useLocation();
  if (!value) return <Navigate to="/signin" replace state={{ from: location.pathname + location.search }} />;
  return <>{children}</>;
}

export function SignInPage() {
  const [value, setValue] = useState("");
  const [url, setUrl] = useState(apiUrl());
  const navigate = useNavigate();
  const location = useLocation();
  const from = (location.state as { from?: string } | null)?.from ?? "/";

  function submit(event: FormEvent) {
    event.preventDefault();
    const changedApi = url.replace(/\/+$/, "") !== apiUrl();
    setApiUrl(url);
    signIn(value);
    if (changedApi) window.location.assign(`${import.meta.env.BASE_URL}${from.replace(/^\//, "")}`);
    else navigate(from, { replace: true });
  }

  return (
    <main className="signin">
      <h1>Modomo review</h1>
      <form onSubmit={submit} className="card">
        <label>
          Token or API key
          <textarea
            name="credential"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            placeholder="eyJhbGciOi… or mdk_…"
            rows={4}
            required
            autoFocus
          />
        </label>
        <details>
          <summary>API address</summary>
          <label>
            API URL (empty: this site)
            <input name="api" value={url} onChange={(e) => setUrl(e.target.value)} placeholder="http://127.0.0.1:8080" />
          </label>
        </details>
        <button type="submit">Sign in</button>
        <p className="muted">
          Kept in this browser only. <code>modomo demo</code> prints a link that signs in.
        </p>
      </form>
    </main>
  );
}

/** Who the API says the caller is (GET /me), with the organisation every page is
 * confined to; the credential's own claims stand in until the answer comes. */
export function WhoAmI() {
  const value = useCredential();
  const who = identity(value);
  const me = useQuery({
    queryKey: ["me", value],
    queryFn: async () => unwrap(await api.GET("/me")) as MeOut,
    enabled: value !== null,
    staleTime: 60_000,
  });
  if (!who) return null;
  const subject = me.data?.subject ?? who.subject;
  const role = me.data?.role ?? who.role;
  return (
    <span className="whoami">
      {me.data ? (
        <span className="org" title="your organisation: you see only its datasets" data-org={me.data.org}>
          {me.data.org}
        </span>
      ) : null}{" "}
      {subject} · {role}{" "}
      <button type="button" className="link" onClick={() => signOut()}>
        sign out
      </button>
    </span>
  );
}
