/**
 * A fake Binance Data Vision archive (https://data.binance.vision) on 127.0.0.1 for tests.
 *
 * Serves, as published:
 * - `/data/spot/{monthly,daily}/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<YYYY>-<MM>[-<DD>].zip`,
 *   the same under `/data/futures/um/...` (USDⓈ-M), each zip holding one CSV named like the zip;
 *   USDⓈ-M also has `markPriceKlines`, `indexPriceKlines` (keyed by pair, for a perpetual its
 *   symbol id) and `premiumIndexKlines` in place of `klines`, with the same names and header rule;
 * - `<zip>.CHECKSUM`: `<sha256 hex>  <zip file name>\n` (the `sha256sum -c` format);
 * - the S3 ListObjects (v1) listing at `/?prefix=...&delimiter=/[&marker=...][&max-keys=...]`:
 *   `ListBucketResult` with `Contents` (Key, LastModified, ETag, Size, StorageClass) and
 *   `CommonPrefixes`, paged by `marker` / `IsTruncated` / `NextMarker` (sent when a delimiter is);
 *   the ETag is not an MD5 here but the first 32 hex digits of the zip's SHA-256.
 *
 * CSV rows are `open_time,open,high,low,close,volume,close_time,quote_volume,count,
 * taker_buy_volume,taker_buy_quote_volume,ignore` with the REST kline row's values (for mark,
 * index and premium index those of `/fapi/v1/markPriceKlines` etc.: "0" volumes). Spot files
 * have no header and, from 2025-01-01 on, open/close times in microseconds; futures files have a
 * header row from 2022-01-01 on. Daily files are published for whole days before today, monthly
 * files for whole months before the current month (UTC, on the fake's clock), from the listing on.
 *
 * Rows come from an {@linkcode ArchiveSource}; {@linkcode fakeExchangeSource} makes them the
 * fake exchange's own REST series, so archive and REST are one exact series.
 *
 * @module
 */
import { zipSync } from "fflate";
import type { PriceKind } from "../../src/market_type.ts";
import { timeframeMs } from "../../src/timeframe.ts";
import type { FakeExchange } from "./fake_exchange.ts";
import { binanceKlineRow } from "./fake_derivatives.ts";
import { isInverse } from "./fake_derivatives_data.ts";

/** Which archive tree: `spot` (`data/spot`) or USDⓈ-M futures (`data/futures/um`). */
export type ArchiveMarket = "spot" | "um";

/** A kline row exactly as the REST endpoint sends it (JSON array, open time in ms first). */
export type KlineRow = readonly (string | number)[];

/** Where the archive's rows come from. */
export interface ArchiveSource {
  /** Exchange ids of the symbols published for `market` (e.g. `BTCUSDT`). */
  symbols(market: ArchiveMarket): string[];
  /** Listing time (ms) of a symbol; undefined when `market` does not list it. */
  listedAt(market: ArchiveMarket, symbolId: string): number | undefined;
  /** Closed REST rows of a symbol/interval with `from <= open time < to`, oldest first. */
  rows(query: ArchiveQuery): KlineRow[];
}

/** What one archive file covers. */
export interface ArchiveQuery {
  market: ArchiveMarket;
  /** Which candles: `trade` (`klines`), or on USDⓈ-M `mark`, `index` or `premium`. */
  price: PriceKind;
  /** Exchange id, e.g. `BTCUSDT`. */
  symbolId: string;
  /** Binance interval, e.g. `1m`. */
  interval: string;
  /** Period start (ms, inclusive). */
  from: number;
  /** Period end (ms, exclusive). */
  to: number;
}

/** A fault for one zip file name: always, or for its first `times` downloads. */
export type FileFault = string | { file: string; times: number };

/** Faults the fake injects; mutable while it runs. */
export interface ArchiveFaults {
  /** Zips whose `.CHECKSUM` states a wrong SHA-256 (the zip itself is fine). */
  badChecksum: FileFault[];
  /**
   * Zips served truncated (no central directory). While the fault is listed, the `.CHECKSUM`
   * states the SHA-256 of the truncated bytes: the download verifies but cannot be unzipped.
   */
  corrupt: FileFault[];
  /** Zips answered 404 (with their `.CHECKSUM`), and left out of the listing. */
  missing: string[];
  /** Delay before every response (ms). */
  latencyMs: number;
}

/** Requests and bytes served. */
export interface ArchiveStats {
  requests: number;
  bytes: number;
  /** Per request path (without query): requests and body bytes. */
  byPath: Record<string, { requests: number; bytes: number }>;
  /** Responses per HTTP status. */
  byStatus: Record<number, number>;
}

/** Options of {@linkcode startFakeArchive}. */
export interface FakeArchiveOptions {
  /** Row source (e.g. {@linkcode fakeExchangeSource}). */
  source: ArchiveSource;
  /** The fake's clock (ms); default `Date.now`. Pass the fake exchange's `now` to share its clock. */
  now?: () => number;
  /** Initial faults. */
  faults?: Partial<ArchiveFaults>;
  /** Largest listing page (S3: 1000); `max-keys` can only lower it. */
  listPageSize?: number;
  /** How many built zips stay in memory (default 16); raise it to {@linkcode FakeArchive.warm} a bench's files. */
  cacheFiles?: number;
}

/** A running fake archive. */
export interface FakeArchive {
  /** Base URL, e.g. `http://127.0.0.1:1234` (what `ARCHIVE_URL` would be). */
  url: string;
  faults: ArchiveFaults;
  stats: ArchiveStats;
  /** Clears the counters. */
  resetStats(): void;
  /**
   * Builds the zips of published keys (`data/...zip`) ahead of their downloads, so a bench does
   * not time the fake's CSV generation (about 0.3 s a month of 1m); throws for a key not published.
   */
  warm(keys: readonly string[]): Promise<void>;
  /** The zip bytes and their SHA-256 hex for a file path (`data/...zip`), as the fake serves them unfaulted. */
  file(path: string): Promise<{ zip: Uint8Array; sha256: string } | null>;
  close(): Promise<void>;
}

const DAY = 86_400_000;
/** Spot files switch to microsecond timestamps here. */
export const SPOT_MICROS_FROM = Date.UTC(2025, 0, 1);
/** Futures files carry a header row from here on. */
export const FUTURES_HEADER_FROM = Date.UTC(2022, 0, 1);
/** The published CSV columns (the futures header row). */
export const CSV_HEADER =
  "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore";
/** Intervals the fake publishes (Binance also has `1mo`, which the fake does not). */
export const ARCHIVE_INTERVALS = [
  "1s",
  "1m",
  "3m",
  "5m",
  "15m",
  "30m",
  "1h",
  "2h",
  "4h",
  "6h",
  "8h",
  "12h",
  "1d",
  "3d",
  "1w",
];
const ROOTS: Record<ArchiveMarket, string> = { spot: "data/spot", um: "data/futures/um" };
/** The kline directories of each price kind. */
export const PRICE_DIRECTORIES: Readonly<Record<PriceKind, string>> = {
  trade: "klines",
  mark: "markPriceKlines",
  index: "indexPriceKlines",
  premium: "premiumIndexKlines",
};
/** The kline directories each market publishes (spot: trade candles only), sorted as S3 lists them. */
const DIRECTORIES: Record<ArchiveMarket, string[]> = {
  spot: ["klines"],
  um: Object.values(PRICE_DIRECTORIES).sort(),
};
const priceOf = (directory: string): PriceKind =>
  (Object.keys(PRICE_DIRECTORIES) as PriceKind[]).find((p) => PRICE_DIRECTORIES[p] === directory) ?? "trade";

/**
 * The key (`data/...zip`, the URL path without its leading `/`) of the monthly or daily file
 * holding `from` (ms), e.g. `data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip`;
 * `file.price` (default trade) picks the directory, e.g. `markPriceKlines`.
 */
export function archiveKey(
  period: "monthly" | "daily",
  file: { market: ArchiveMarket; symbolId: string; interval: string; from: number; price?: PriceKind },
): string {
  return fileRef(file.market, period, file.symbolId, file.interval, file.from, file.price).key;
}
const FILE_RE =
  /^data\/(spot|futures\/um)\/(monthly|daily)\/([A-Za-z]+)\/([A-Z0-9_]+)\/([0-9a-z]+)\/([A-Z0-9_]+)-([0-9a-z]+)-([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?\.zip$/;
const DIR_RE = /^data\/(spot|futures\/um)\/(monthly|daily)\/([A-Za-z]+)\/([A-Z0-9_]+)\/([0-9a-z]+)\/$/;

/** One published file's identity. */
interface FileRef {
  market: ArchiveMarket;
  price: PriceKind;
  period: "monthly" | "daily";
  symbolId: string;
  interval: string;
  from: number;
  to: number;
  /** Zip file name. */
  name: string;
  /** Zip key (`data/...zip`). */
  key: string;
}

const pad = (n: number) => String(n).padStart(2, "0");

function fileRef(
  market: ArchiveMarket,
  period: "monthly" | "daily",
  symbolId: string,
  interval: string,
  from: number,
  price: PriceKind = "trade",
) {
  const d = new Date(from);
  const ym = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
  const stamp = period === "monthly" ? ym : `${ym}-${pad(d.getUTCDate())}`;
  const to = period === "monthly" ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) : from + DAY;
  const name = `${symbolId}-${interval}-${stamp}.zip`;
  const key = `${ROOTS[market]}/${period}/${PRICE_DIRECTORIES[price]}/${symbolId}/${interval}/${name}`;
  return { market, price, period, symbolId, interval, from, to, name, key } satisfies FileRef;
}

/** The CSV text of REST rows as published for a file of `market` starting at `periodStart` (header and time-unit rules). */
export function archiveCsv(
  rows: readonly KlineRow[],
  options: { market: ArchiveMarket; periodStart: number },
): string {
  const { market, periodStart } = options;
  const micros = market === "spot" && periodStart >= SPOT_MICROS_FROM;
  const lines = market === "um" && periodStart >= FUTURES_HEADER_FROM ? [CSV_HEADER] : [];
  for (const r of rows) {
    const cells = r.map(String);
    if (micros) {
      cells[0] = String(Number(r[0]) * 1000);
      cells[6] = String((Number(r[6]) + 1) * 1000 - 1);
    }
    lines.push(cells.join(","));
  }
  return lines.map((l) => l + "\n").join("");
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function xmlEscape(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

/** Takes a fault for `name` (counting down a `times` fault); whether it applies now. */
function takeFault(list: FileFault[], name: string): boolean {
  const i = list.findIndex((f) => (typeof f === "string" ? f : f.file) === name);
  if (i < 0) return false;
  const f = list[i];
  if (typeof f === "string") return true;
  if (f.times <= 1) list.splice(i, 1);
  else list[i] = { file: f.file, times: f.times - 1 };
  return true;
}

const hasFault = (list: FileFault[], name: string) => list.some((f) => (typeof f === "string" ? f : f.file) === name);

/**
 * A source serving the fake exchange's REST series: spot rows as `/api/v3/klines` sends them,
 * USDⓈ-M (linear contracts) as `/fapi/v1/klines` does, from `fake.expected` and
 * `fake.derivatives.expectedCandles` on the fake's clock.
 */
export function fakeExchangeSource(fake: FakeExchange): ArchiveSource {
  const spotId = (symbol: string) => symbol.replace("/", "");
  const linear = () => fake.derivatives.contracts.filter((c) => !isInverse(c));
  const find = (market: ArchiveMarket, id: string) =>
    market === "spot"
      ? fake.markets.find((m) => spotId(m.symbol) === id)
      : linear().find((c) => fake.derivatives.contractId(c.symbol) === id);
  return {
    symbols: (market) =>
      market === "spot"
        ? fake.markets.map((m) => spotId(m.symbol))
        : linear().map((c) => fake.derivatives.contractId(c.symbol)),
    listedAt: (market, id) => find(market, id)?.listedAt,
    rows({ market, price, symbolId, interval, from, to }) {
      const found = find(market, symbolId);
      if (!found) return [];
      const tf = timeframeMs(interval);
      if (market === "spot") {
        return fake.expected(found.symbol, interval, from, to).map((c) => [
          c.ts,
          String(c.open),
          String(c.high),
          String(c.low),
          String(c.close),
          String(c.volume),
          c.ts + tf - 1,
          "0",
          10,
          "0",
          "0",
          "0",
        ]);
      }
      const contract = linear().find((c) => c.symbol === found.symbol);
      if (!contract) return [];
      const kind = price === "premium" ? "premiumIndex" : price;
      return fake.derivatives.expectedCandles(found.symbol, interval, { from, to, price: kind })
        .map((c) => binanceKlineRow(contract, kind, tf, c));
    },
  };
}

/** Starts the fake archive on 127.0.0.1 at a random port. */
export async function startFakeArchive(options: FakeArchiveOptions): Promise<FakeArchive> {
  const { source } = options;
  const now = options.now ?? Date.now;
  const pageSize = options.listPageSize ?? 1000;
  const cacheFiles = options.cacheFiles ?? 16;
  const faults: ArchiveFaults = { badChecksum: [], corrupt: [], missing: [], latencyMs: 0, ...options.faults };
  const stats: ArchiveStats = { requests: 0, bytes: 0, byPath: {}, byStatus: {} };
  const meta = new Map<string, { size: number; sha256: string }>();
  const cache = new Map<string, Promise<Uint8Array>>();

  const marketOf = (root: string): ArchiveMarket => (root === "spot" ? "spot" : "um");

  /** Every published file of a symbol/interval/period (of `price`'s directory), oldest first. */
  const published = (
    market: ArchiveMarket,
    period: "monthly" | "daily",
    file: { symbolId: string; interval: string; price: PriceKind },
  ) => {
    const { symbolId, interval, price } = file;
    const listed = source.listedAt(market, symbolId);
    if (listed === undefined || !ARCHIVE_INTERVALS.includes(interval)) return [];
    if (!DIRECTORIES[market].includes(PRICE_DIRECTORIES[price])) return [];
    const t = now();
    const today = Math.floor(t / DAY) * DAY;
    const d = new Date(t);
    const end = period === "daily" ? today : Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const l = new Date(listed);
    let from = period === "daily" ? Math.floor(listed / DAY) * DAY : Date.UTC(l.getUTCFullYear(), l.getUTCMonth(), 1);
    const out: FileRef[] = [];
    while (true) {
      const ref = fileRef(market, period, symbolId, interval, from, price);
      if (ref.to > end) break;
      if (!faults.missing.includes(ref.name)) out.push(ref);
      from = ref.to;
    }
    return out;
  };

  const resolve = (key: string): FileRef | null => {
    const m = FILE_RE.exec(key);
    if (!m) return null;
    const [, root, period, directory, symbolId, interval, sym2, int2, y, mo, dd] = m;
    if (sym2 !== symbolId || int2 !== interval || (period === "daily") !== (dd !== undefined)) return null;
    const from = Date.UTC(Number(y), Number(mo) - 1, dd === undefined ? 1 : Number(dd));
    const ref = fileRef(marketOf(root), period as "monthly" | "daily", symbolId, interval, from, priceOf(directory));
    if (ref.key !== key) return null; // e.g. 2024-02-31, or an unknown directory
    return published(ref.market, ref.period, ref).some((r) => r.key === key) ? ref : null;
  };

  /** The unfaulted zip of a file (built once; the last `cacheFiles` are kept, sizes and hashes always). */
  const build = (ref: FileRef): Promise<Uint8Array> => {
    const hit = cache.get(ref.key);
    if (hit) return hit;
    const made = (async () => {
      const rows = source.rows({ ...ref });
      const csv = new TextEncoder().encode(archiveCsv(rows, { market: ref.market, periodStart: ref.from }));
      const zip = zipSync({ [ref.name.replace(/\.zip$/, ".csv")]: [csv, { mtime: new Date(ref.to) }] }, { level: 6 });
      meta.set(ref.key, { size: zip.length, sha256: await sha256Hex(zip) });
      return zip;
    })();
    cache.set(ref.key, made);
    if (cache.size > cacheFiles) cache.delete(cache.keys().next().value!);
    return made;
  };

  const info = async (ref: FileRef) => meta.get(ref.key) ?? (await build(ref), meta.get(ref.key)!);

  /** Child directory names of `dir` (ending in `/`), for delimiter listings above a symbol/interval. */
  const children = (dir: string): string[] => {
    const parts = dir.split("/").filter(Boolean);
    if (parts.length === 0) return ["data/"];
    if (dir === "data/") return ["futures/", "spot/"];
    if (dir === "data/futures/") return ["um/"];
    const m = /^data\/(spot|futures\/um)\/(.*)$/.exec(dir);
    if (!m) return [];
    const rest = m[2].split("/").filter(Boolean);
    if (rest.length === 0) return ["daily/", "monthly/"];
    if (!["daily", "monthly"].includes(rest[0])) return [];
    if (rest.length === 1) return DIRECTORIES[marketOf(m[1])].map((d) => `${d}/`);
    if (!DIRECTORIES[marketOf(m[1])].includes(rest[1])) return [];
    if (rest.length === 2) return source.symbols(marketOf(m[1])).sort().map((s) => `${s}/`);
    if (rest.length === 3 && source.listedAt(marketOf(m[1]), rest[2]) !== undefined) {
      return [...ARCHIVE_INTERVALS].sort().map((i) => `${i}/`);
    }
    return [];
  };

  const listing = async (q: URLSearchParams): Promise<Response> => {
    const prefix = q.get("prefix") ?? "";
    const delimiter = q.get("delimiter") ?? "";
    const marker = q.get("marker") ?? "";
    const maxKeys = Math.min(pageSize, Number(q.get("max-keys") ?? pageSize) || pageSize);
    const slash = prefix.lastIndexOf("/");
    const dir = prefix.slice(0, slash + 1);
    const dm = DIR_RE.exec(dir);
    let entries: { key: string; ref?: FileRef }[];
    if (dm) {
      const [, root, period, directory, symbolId, interval] = dm;
      const price = priceOf(directory);
      entries = (PRICE_DIRECTORIES[price] === directory
        ? published(marketOf(root), period as "monthly" | "daily", { symbolId, interval, price })
        : [])
        .flatMap((ref) => [{ key: ref.key, ref }, { key: `${ref.key}.CHECKSUM`, ref }])
        .filter((e) =>
          e.key.startsWith(prefix)
        );
    } else if (delimiter === "/") {
      entries = children(dir).map((c) => ({ key: dir + c })).filter((e) => e.key.startsWith(prefix));
    } else entries = [];
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const after = entries.filter((e) => e.key > marker);
    const page = after.slice(0, maxKeys);
    const truncated = after.length > page.length;
    const parts: string[] = [];
    for (const e of page) {
      if (!e.ref) {
        parts.push(`<CommonPrefixes><Prefix>${xmlEscape(e.key)}</Prefix></CommonPrefixes>`);
        continue;
      }
      const m = await info(e.ref);
      const checksum = e.key.endsWith(".CHECKSUM");
      const size = checksum ? new TextEncoder().encode(`${m.sha256}  ${e.ref.name}\n`).length : m.size;
      const modified = new Date(e.ref.to + 8 * 3_600_000).toISOString();
      parts.push(
        `<Contents><Key>${xmlEscape(e.key)}</Key><LastModified>${modified}</LastModified>` +
          `<ETag>&quot;${m.sha256.slice(0, 32)}&quot;</ETag><Size>${size}</Size>` +
          `<StorageClass>STANDARD</StorageClass></Contents>`,
      );
    }
    const next = truncated && delimiter ? `<NextMarker>${xmlEscape(page[page.length - 1].key)}</NextMarker>` : "";
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n` +
      `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>data.binance.vision</Name>` +
      `<Prefix>${xmlEscape(prefix)}</Prefix><Marker>${xmlEscape(marker)}</Marker>${next}` +
      `<MaxKeys>${maxKeys}</MaxKeys>${delimiter ? `<Delimiter>${xmlEscape(delimiter)}</Delimiter>` : ""}` +
      `<IsTruncated>${truncated}</IsTruncated>${parts.join("")}</ListBucketResult>`;
    return new Response(body, { headers: { "content-type": "application/xml" } });
  };

  const notFound = (key: string) =>
    new Response(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>${
        xmlEscape(key)
      }</Key></Error>`,
      { status: 404, headers: { "content-type": "application/xml" } },
    );

  const serveFile = async (key: string): Promise<Response> => {
    const checksum = key.endsWith(".CHECKSUM");
    const ref = resolve(checksum ? key.slice(0, -".CHECKSUM".length) : key);
    if (!ref) return notFound(key);
    const zip = await build(ref);
    const corrupt = checksum ? hasFault(faults.corrupt, ref.name) : takeFault(faults.corrupt, ref.name);
    const bytes = corrupt ? zip.slice(0, Math.floor(zip.length / 2)) : zip;
    if (!checksum) {
      return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { "content-type": "application/zip" } });
    }
    const sha = takeFault(faults.badChecksum, ref.name)
      ? await sha256Hex(new TextEncoder().encode(`bad ${ref.name}`))
      : corrupt
      ? await sha256Hex(bytes)
      : meta.get(ref.key)!.sha256;
    return new Response(`${sha}  ${ref.name}\n`, { headers: { "content-type": "text/plain" } });
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (faults.latencyMs > 0) await new Promise((r) => setTimeout(r, faults.latencyMs));
    const res = req.method !== "GET" && req.method !== "HEAD"
      ? new Response("Method Not Allowed", { status: 405 })
      : url.pathname === "/"
      ? await listing(url.searchParams)
      : await serveFile(decodeURIComponent(url.pathname.slice(1)));
    const body = new Uint8Array(await res.arrayBuffer());
    stats.requests++;
    stats.bytes += body.length;
    const s = stats.byPath[url.pathname] ??= { requests: 0, bytes: 0 };
    s.requests++;
    s.bytes += body.length;
    stats.byStatus[res.status] = (stats.byStatus[res.status] ?? 0) + 1;
    return new Response(req.method === "HEAD" ? null : body, { status: res.status, headers: res.headers });
  };

  let resolvePort!: (port: number) => void;
  const portPromise = new Promise<number>((r) => (resolvePort = r));
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: ({ port }) => resolvePort(port) }, handler);
  const port = await portPromise;
  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    stats,
    resetStats() {
      stats.requests = 0;
      stats.bytes = 0;
      stats.byPath = {};
      stats.byStatus = {};
    },
    async warm(keys) {
      for (const key of keys) {
        const ref = resolve(key);
        if (!ref) throw new Error(`Cannot warm an archive file: current value is ${key}, not a published key`);
        await build(ref);
      }
    },
    async file(path) {
      const ref = resolve(path.replace(/^\//, ""));
      if (!ref) return null;
      const zip = await build(ref);
      return { zip, sha256: meta.get(ref.key)!.sha256 };
    },
    async close() {
      await server.shutdown();
    },
  };
}
