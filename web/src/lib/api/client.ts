/** The one configured API client: typed from the OpenAPI document (openapi-fetch), with the
 * caller's credentials on every request. Request functions and query hooks live with their
 * feature; caching, retries and invalidation live in TanStack Query (src/lib/query.ts). */
import createClient, { type Middleware } from "openapi-fetch";
import { authHeaders, signOut } from "../auth";
import { apiUrl } from "../config";
import type { paths } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    for (const [name, value] of Object.entries(authHeaders())) request.headers.set(name, value);
    return request;
  },
  onResponse({ response }) {
    // A credential that stopped working (expired, revoked) sends the user to sign in again.
    if (response.status === 401) signOut();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: apiUrl() });
api.use(auth);

/** The data of an openapi-fetch result, or an ApiError carrying the API's `detail`. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.data !== undefined && result.response.ok) return result.data;
  const error = result.error as { detail?: unknown } | undefined;
  const detail =
    typeof error?.detail === "string" ? error.detail : result.response.statusText || "error";
  throw new ApiError(result.response.status, detail);
}
