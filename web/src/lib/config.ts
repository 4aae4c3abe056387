/** Where the API is: the origin the app was served from (the API serves it at /app), unless
 * the build set VITE_API_URL or the sign-in page saved another one (an app served elsewhere,
 * which CORS must allow). */
const KEY = "modomo.apiUrl";

export function apiUrl(): string {
  const saved = localStorage.getItem(KEY);
  if (saved) return saved.replace(/\/+$/, "");
  const built = import.meta.env.VITE_API_URL as string | undefined;
  return (built ?? "").replace(/\/+$/, "");
}

export function setApiUrl(url: string): void {
  if (url.trim()) localStorage.setItem(KEY, url.trim());
  else localStorage.removeItem(KEY);
}

/** An absolute URL for a path the API gave (a relative events_url, say). */
export function apiHref(path: string): string {
  if (/^https?:\/\//.test(path)) return path;
  return `${apiUrl() || window.location.origin}${path}`;
}
