/**
 * The dashboard keeps up without a reload: candles written to the database while the page is open
 * appear (appended, or the forming candle updated in place), more than one page of them without
 * loss or duplicates; polling stops while the tab is hidden. Prices and volumes are shown with the
 * market's own decimals. Also: every dashboard file is served with its content type.
 */
import type { Page } from "playwright-core";
import type { Candle } from "../../src/candle.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { launchBrowser, loadedTimes, openPage, probe, tableRows, waitReady } from "./browser.ts";
import { HOUR, MIN, seed, startApi } from "./helpers.ts";

const NOW = Date.UTC(2024, 2, 1, 12, 0);
const round = (x: number, d: number) => Number(x.toFixed(d));

/** `count` 1m candles from `from` with prices of `pd` decimals around `base` and volumes of `vd` decimals. */
function candles(from: number, count: number, base: number, pd: number, vd: number): Candle[] {
  return Array.from({ length: count }, (_, i) => {
    const ts = from + i * MIN, k = ts / MIN;
    const open = round(base * (1 + 0.05 * Math.sin(k / 10)), pd);
    const close = round(base * (1 + 0.05 * Math.sin((k + 1) / 10)), pd);
    const high = round(Math.max(open, close) + base * 0.002, pd);
    const low = round(Math.min(open, close) - base * 0.002, pd);
    return { ts, open, high, low, close, volume: round(1000 + 300 * Math.cos(k / 7), vd) };
  });
}

/** Waits until the page has `n` candles loaded (live updates poll every 5 s). */
async function waitCandles(page: Page, n: number): Promise<void> {
  await page.waitForFunction(
    (want) => {
      const p = (globalThis as unknown as { __candlekeep: { candles: number } }).__candlekeep;
      return p.candles === want;
    },
    n,
    { timeout: 20_000 },
  );
}

/** Sets the tab's visibility as the browser would when switching tabs. */
function setHidden(page: Page, hidden: boolean): Promise<void> {
  return page.evaluate(`(() => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => ${hidden} });
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "${
    hidden ? "hidden" : "visible"
  }" });
    document.dispatchEvent(new Event("visibilitychange"));
  })()`);
}

function assertContiguous(times: string[], stepMs: number): void {
  for (let i = 1; i < times.length; i++) {
    const step = Date.parse(times[i]) - Date.parse(times[i - 1]);
    if (step !== stepMs) throw new Error(`candles ${times[i - 1]} → ${times[i]}: step ${step} ms, expected ${stepMs}`);
  }
}

Deno.test("dashboard: market precision; live candles appended and updated in place; no polling while hidden", async () => {
  const api = await startApi({ now: () => NOW });
  const browser = await launchBrowser();
  try {
    const doge = await api.series("binance", "DOGE/USDT", "1m");
    const dogeFrom = NOW - 3 * HOUR;
    const last = { ts: NOW - MIN, open: 0.1234, high: 0.12346, low: 0.12301, close: 0.12345, volume: 1234.5 };
    await seed(api.t.sql, doge, [...candles(dogeFrom, 179, 0.12, 5, 8), last]);
    const btc = await api.series("binance", "BTC/USDT", "1m");
    const btcLast = { ts: NOW - MIN, open: 43210.5, high: 43215.75, low: 43200.25, close: 43211.25, volume: 0.125 };
    await seed(api.t.sql, btc, [...candles(NOW - 2 * HOUR, 119, 43000, 2, 3), btcLast]);
    await api.t.sql`update series set state = 'live'`;

    const { page, errors } = await openPage(browser);
    await page.goto(`${api.base}/?exchange=binance&symbol=DOGE/USDT&timeframe=1m`);
    let p = await waitReady(page, "binance|DOGE/USDT|1m");

    // Precision: 5 price decimals and 8 volume decimals, from the data, everywhere.
    assertEquals(p.precision, { price: 5, volume: 8 });
    assertEquals(await page.evaluate("globalThis.__candlekeep.formats()"), {
      price: { type: "price", precision: 5, minMove: 0.00001 },
      volume: { type: "price", precision: 8, minMove: 1e-8 },
    });
    const legend = (await page.textContent("#legend"))!;
    for (const part of ["O 0.12340", "H 0.12346", "L 0.12301", "C 0.12345", "Vol 1,234.50000000"]) {
      assert(legend.includes(part), `legend ${legend} lacks ${part}`);
    }
    assertEquals((await tableRows(page, "#candle-table"))[0], [
      "2024-03-01 11:59",
      "0.12340",
      "0.12346",
      "0.12301",
      "0.12345",
      "1,234.50000000",
    ]);
    // Another market, other decimals.
    await page.selectOption("#series-select", "binance|BTC/USDT");
    p = await waitReady(page, "binance|BTC/USDT|1m");
    assertEquals(p.precision, { price: 2, volume: 3 });
    assertEquals((await tableRows(page, "#candle-table"))[0].slice(1), [
      "43,210.50",
      "43,215.75",
      "43,200.25",
      "43,211.25",
      "0.125",
    ]);
    assert((await page.textContent("#legend"))!.includes("C 43,211.25"));
    assertEquals(await page.textContent("#precision"), "2 price / 3 volume decimals");
    await page.goBack();
    p = await waitReady(page, "binance|DOGE/USDT|1m");
    assertEquals(p.candles, 180);

    // One new candle appears without a reload, pushed over /v1/stream before the next poll.
    await page.waitForFunction("globalThis.__candlekeep.streaming()", null, { timeout: 10_000 });
    const pollsBefore = await page.evaluate("globalThis.__candlekeep.polls") as number;
    const streamedBefore = await page.evaluate("globalThis.__candlekeep.streamed") as number;
    await seed(api.t.sql, doge, candles(NOW, 1, 0.12, 5, 8));
    await waitCandles(page, 181);
    assert(
      (await page.evaluate("globalThis.__candlekeep.streamed")) as number > streamedBefore,
      "the candle came over /v1/stream",
    );
    assertEquals(await page.evaluate("globalThis.__candlekeep.polls"), pollsBefore, "before the next poll");
    // The server's clock stays at NOW: the candle opening at NOW is still forming.
    assertEquals((await tableRows(page, "#candle-table"))[0][0], "2024-03-01 12:00 forming");
    // 1200 at once (more than one 1000-candle page): all of them, once each, in order.
    await seed(api.t.sql, doge, candles(NOW + MIN, 1200, 0.12, 5, 8));
    await waitCandles(page, 1381);
    let times = await loadedTimes(page);
    assertEquals(times[0], new Date(dogeFrom).toISOString());
    assertEquals(times.at(-1), new Date(NOW + 1200 * MIN).toISOString());
    assertContiguous(times, MIN);
    const series = await tableRows(page, "#series-table");
    assertEquals(series.find((r) => r[2] === "DOGE/USDT")!.slice(5, 8), [
      "2024-03-01 09:00",
      "2024-03-02 08:00",
      "1,381",
    ]);

    // At 5m (resampled) the newest bucket is forming: a new 1m candle updates it in place.
    await page.click('#timeframes button[data-tf="5m"]');
    p = await waitReady(page, "binance|DOGE/USDT|5m");
    const buckets = p.candles;
    assertEquals(buckets, Math.ceil(1381 / 5));
    const newest = (await tableRows(page, "#candle-table"))[0];
    assertEquals(newest[0], "2024-03-02 08:00 forming");
    const spike = { ts: NOW + 1201 * MIN, open: 0.125, high: 0.2, low: 0.1, close: 0.15, volume: 1 };
    await seed(api.t.sql, doge, [spike]);
    await page.waitForFunction(
      `document.querySelector("#candle-table tbody tr td:nth-child(3)")?.textContent === "0.20000"`,
      undefined,
      { timeout: 20_000 },
    );
    assertEquals((await probe(page)).candles, buckets, "updated in place, not appended");
    assertEquals((await tableRows(page, "#candle-table"))[0].slice(0, 5), [
      "2024-03-02 08:00 forming",
      newest[1],
      "0.20000",
      "0.10000",
      "0.15000",
    ]);
    assert((await page.textContent("#legend"))!.includes("H 0.20000"));
    await seed(api.t.sql, doge, candles(NOW + 1205 * MIN, 1, 0.12, 5, 8));
    await waitCandles(page, buckets + 1);
    times = await loadedTimes(page);
    assertContiguous(times, 5 * MIN);

    // Hidden tab: no polls, nothing new; visible again: polls at once and catches up.
    await setHidden(page, true);
    const polls = (await probe(page)).polls;
    await seed(api.t.sql, doge, candles(NOW + 1210 * MIN, 1, 0.12, 5, 8));
    await page.waitForTimeout(7_000);
    assertEquals((await probe(page)).polls, polls, "no polling while hidden");
    assertEquals((await probe(page)).candles, buckets + 1);
    await setHidden(page, false);
    await waitCandles(page, buckets + 2);
    assertEquals(errors, [], "no errors in the page");
  } finally {
    await browser.close();
    await api.close();
  }
});

Deno.test("dashboard: every file is served with its content type; unknown assets are 404", async () => {
  const api = await startApi();
  try {
    const dir = new URL("../../src/api/dashboard/", import.meta.url);
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.isFile && e.name !== "index.html") names.push(e.name);
    assert(names.length >= 8, names.join(", "));
    for (const name of [...names, "lightweight-charts.js"]) {
      const res = await fetch(`${api.base}/assets/${name}`);
      const body = await res.text();
      assertEquals(res.status, 200, name);
      const type = name.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
      assertEquals(res.headers.get("content-type"), type, name);
      if (name !== "lightweight-charts.js") assertEquals(body, await Deno.readTextFile(new URL(name, dir)), name);
    }
    const html = await fetch(`${api.base}/`);
    assertEquals(html.headers.get("content-type"), "text/html; charset=utf-8");
    assert((await html.text()).includes('<script type="module" src="/assets/app.js">'));
    const missing = await fetch(`${api.base}/assets/nope.js`);
    assertEquals(missing.status, 404);
    await missing.body?.cancel();
  } finally {
    await api.close();
  }
});
