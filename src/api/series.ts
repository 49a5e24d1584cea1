/**
 * `/v1/series` routes: overview, gaps of one series, adding and removing series.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { overviewJson, seriesOverview } from "../db/overview.ts";
import { seriesDocument, storedHistories } from "../derivatives/overview_json.ts";
import { findGaps, listHoles } from "../ingest/gaps.ts";
import { timeframeMs } from "../timeframe.ts";
import { requireToken } from "./auth.ts";
import {
  BadRequestError,
  json,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
} from "./errors.ts";
import {
  AddSeriesBody,
  NoQuery,
  parseBody,
  parsePathParam,
  parseQuery,
  RemoveSeriesQuery,
  SeriesId,
} from "./params.ts";

/** What the API asks of the ingest engine; implemented by the engine, faked in tests. */
export interface IngestControl {
  /** Registers a series and starts collecting it; `created` is false when it already existed. */
  addSeries(input: { exchange: string; symbol: string; timeframe: string; since?: string }): Promise<{
    id: number;
    created: boolean;
  }>;
  /** Stops updating a series (and deletes its candles when `purge`); false when unknown. */
  removeSeries(id: number, options: { purge: boolean }): Promise<boolean>;
}

/** Most gap ranges and holes one `/v1/series/{id}/gaps` response lists. */
export const MAX_RANGES = 10_000;
/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 16 * 1024;

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The JSON shape of one series in `GET /v1/series` (and `status --json`). */
export const seriesJson = overviewJson;

/**
 * Handles `GET /v1/series`: every candle series, and every funding and open-interest history
 * (`funding_rates`, `open_interest`), as `status --json` lists them.
 */
export async function listSeriesRoute(sql: Sql, url: URL, nowMs: number): Promise<Response> {
  parseQuery(url, NoQuery);
  return json(seriesDocument(await storedHistories(sql, nowMs)));
}

/** Handles `GET /v1/series/{id}/gaps`: every gap range and confirmed hole (at most 10000 each). */
export async function seriesGapsRoute(sql: Sql, url: URL, idText: string, nowMs: number): Promise<Response> {
  parseQuery(url, NoQuery);
  const id = parsePathParam("id", idText, SeriesId);
  const [s] = await seriesOverview(sql, { nowMs, seriesId: id });
  if (!s) throw new NotFoundError(`Cannot find series ${id}: no such id; GET /v1/series lists them`);
  let step: number | null = null;
  try {
    step = timeframeMs(s.timeframe);
  } catch { /* no fixed step: no gaps can be computed */ }
  const gaps = step === null ? [] : await findGaps(sql, id, step, { limit: MAX_RANGES + 1 });
  const holes = await listHoles(sql, id, { limit: MAX_RANGES + 1 });
  return json({
    series: seriesJson(s),
    gaps: gaps.slice(0, MAX_RANGES).map((g) => ({ from: iso(g.from), to: iso(g.to), count: g.count })),
    gaps_truncated: gaps.length > MAX_RANGES,
    holes: holes.slice(0, MAX_RANGES).map((h) => ({
      from: iso(h.from),
      to: iso(h.to),
      reason: h.reason,
      checked_at: iso(h.checkedAt),
    })),
    holes_truncated: holes.length > MAX_RANGES,
  });
}

async function readJsonBody(req: Request): Promise<unknown> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    throw new UnsupportedMediaTypeError(
      `Cannot read the body: current content type is "${type || "(none)"}", expected application/json`,
    );
  }
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) {
    throw new PayloadTooLargeError(`Cannot read the body: current size is ${declared} bytes, limit ${MAX_BODY_BYTES}`);
  }
  const reader = req.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (reader) {
    while (true) {
      let step: ReadableStreamReadResult<Uint8Array>;
      try {
        step = await reader.read();
      } catch {
        // The connection went away mid-body (the client, or the front's body timeout).
        const problem = `ended after ${size} bytes: the connection closed before the whole body arrived`;
        throw new BadRequestError(`Cannot read the body: ${problem}`, [{ parameter: "body", problem }]);
      }
      const { done, value } = step;
      if (done) break;
      size += value.byteLength;
      if (size > MAX_BODY_BYTES) {
        await reader.cancel().catch(() => {});
        throw new PayloadTooLargeError(`Cannot read the body: it exceeds the limit of ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BadRequestError("Cannot read the body: it is not valid UTF-8", [
      { parameter: "body", problem: "is not valid UTF-8" },
    ]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const problem = `is not valid JSON (${(error as Error).message})`;
    throw new BadRequestError(`Cannot read the body: ${problem}`, [{ parameter: "body", problem }]);
  }
}

function requireIngest(ingest: IngestControl | undefined): IngestControl {
  if (!ingest) {
    throw new ServiceUnavailableError(
      "Cannot change series: the ingest engine is not running in this process; try again once it has started",
    );
  }
  return ingest;
}

/** Handles `POST /v1/series` (bearer token): 201 when created, 200 when it already existed. */
export async function addSeriesRoute(
  req: Request,
  url: URL,
  token: string | undefined,
  ingest: IngestControl | undefined,
): Promise<Response> {
  await requireToken(req, token);
  parseQuery(url, NoQuery);
  const body = parseBody(await readJsonBody(req), AddSeriesBody);
  const result = await requireIngest(ingest).addSeries(body);
  return json({ id: result.id, created: result.created }, {
    status: result.created ? 201 : 200,
    headers: { location: `/v1/series/${result.id}/gaps` },
  });
}

/** Handles `DELETE /v1/series/{id}` (bearer token): stops updating it; `?purge=true` deletes its candles. */
export async function removeSeriesRoute(
  req: Request,
  url: URL,
  idText: string,
  token: string | undefined,
  ingest: IngestControl | undefined,
): Promise<Response> {
  await requireToken(req, token);
  const id = parsePathParam("id", idText, SeriesId);
  const { purge } = parseQuery(url, RemoveSeriesQuery);
  const removed = await requireIngest(ingest).removeSeries(id, { purge: purge === "true" });
  if (!removed) throw new NotFoundError(`Cannot remove series ${id}: no such id; GET /v1/series lists them`);
  return json({ id, removed: true, purged: purge === "true" });
}
