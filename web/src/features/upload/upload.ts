/** One file straight to storage through its presigned POST form (the storage refuses a file
 * over its declared size or of another type). XMLHttpRequest, not fetch: only it reports
 * upload progress. */
import type { Upload } from "../../lib/api/types";

export function putFile(
  upload: Upload,
  file: Blob,
  onProgress: (fraction: number) => void,
  timeoutMs = 120_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method, upload.url);
    // The policy's fields first, the file last: S3 ignores every field after it.
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append("file", file);
    xhr.timeout = timeoutMs;
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else reject(new Error(`storage answered ${xhr.status}: ${xhr.responseText.slice(0, 200)}`));
    };
    xhr.onerror = () => reject(new Error("network error while uploading (is CORS set on the bucket?)"));
    xhr.ontimeout = () => reject(new Error(`upload timed out after ${timeoutMs / 1000} s`));
    xhr.send(form);
  });
}

/** Run ``work`` over ``items`` with at most ``limit`` at a time. */
export async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(runners);
}

export const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp"] as const;
export type AcceptedType = (typeof ACCEPTED_TYPES)[number];
export const isAccepted = (type: string): type is AcceptedType =>
  (ACCEPTED_TYPES as readonly string[]).includes(type);
