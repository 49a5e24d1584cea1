// Calls to the JSON API; errors carry the API's own message.

/** GETs a JSON document; throws an Error with the API's `error` text on a non-2xx answer. */
export async function getJson(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
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
