// Calls to the JSON API; errors carry the API's own message.

/**
 * GETs a JSON document; throws an Error with the API's `error` text on a non-2xx answer. A 503
 * (the service is busy) is tried again after its Retry-After, up to `attempts` times in all.
 */
export async function getJson(path, attempts = 4) {
  for (let attempt = 1;; attempt++) {
    const res = await fetch(path, { headers: { accept: "application/json" } });
    if (res.status === 503 && attempt < attempts) {
      await res.body?.cancel();
      const seconds = Math.min(10, Math.max(0.2, Number(res.headers.get("retry-after")) || 1));
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      continue;
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }
}

/** Sends a POST or DELETE with the bearer token; resolves to { status, body }, throws with the API's message. */
export async function send(method, path, options) {
  const headers = { accept: "application/json", authorization: `Bearer ${options.token}` };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${res.status}: ${body.error || res.statusText}`);
  return { status: res.status, body };
}
