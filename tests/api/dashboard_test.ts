/**
 * The dashboard in headless Chromium against the real API on a real PostgreSQL: the chart, older
 * pages, the series table with coverage, the coverage strip, the URL round trip (link, back and
 * forward, bad values), and screenshots on a desktop and a narrow viewport.
 */
import type { Page } from "playwright-core";
import type { Candle } from "../../src/candle.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { launchBrowser, openPage, probe, tableRows, urlParams, waitReady } from "./browser.ts";
import { DAY, HOUR, makeCandles, MIN, seed, startApi, type TestApi } from "./helpers.ts";

const NOW = Date.UTC(2024, 2, 1, 12, 0);
const BTC_FROM = NOW - 4 * DAY;

/** Candles with prices of 2 decimals and volumes of 4, as an exchange would give them. */
const market = (candles: Candle[]) =>
  candles.map((c) => ({
    ...c,
    open: Number(c.open.toFixed(2)),
    high: Number(c.high.toFixed(2)),
    low: Number(c.low.toFixed(2)),
    close: Number(c.close.toFixed(2)),
    volume: Number(c.volume.toFixed(4)),
  }));

/** BTC 1m (4 days, a 90-minute gap and a 3-hour confirmed hole, live), ETH 1h (120 days), SOL 5m (empty). */
async function seedThree(api: TestApi): Promise<void> {
  const btc = await api.series("binance", "BTC/USDT", "1m");
  await seed(
    api.t.sql,
    btc,
    market(makeCandles(BTC_FROM, 4 * DAY / MIN - 3))
      .filter((c) => c.ts < BTC_FROM + DAY || c.ts >= BTC_FROM + DAY + 90 * MIN),
  );
  const holeFrom = (BTC_FROM + 2 * DAY) / 1000, holeTo = (BTC_FROM + 2 * DAY + 3 * HOUR) / 1000;
  await api.t.sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason) values
    (${btc}, to_timestamp(${holeFrom}), to_timestamp(${holeTo}), 'no data from exchange')`;
  await api.t.sql`delete from candles where series_id = ${btc}
    and ts >= to_timestamp(${holeFrom}) and ts < to_timestamp(${holeTo})`;
  await api.t.sql`update series set state = 'live' where id = ${btc}`;
  const eth = await api.series("binance", "ETH/USDT", "1h");
  await seed(
    api.t.sql,
    eth,
    market(makeCandles(NOW - 120 * DAY, 120 * 24 - 5, HOUR).map((c) => ({ ...c, volume: c.volume * 40 }))),
  );
  await api.t.sql`update series set state = 'backfilling' where id = ${eth}`;
  await api.series("kraken", "SOL/USD", "5m");
}

/** Counts the candle-coloured pixels on the chart's canvases. */
function drawnColours(page: Page): Promise<{ up: number; down: number }> {
  // Runs in the page (a string, so this file needs no DOM types).
  return page.evaluate(`(() => {
    let up = 0, down = 0;
    for (const canvas of document.querySelectorAll("#chart canvas")) {
      const ctx = canvas.getContext("2d");
      if (!ctx || canvas.width === 0) continue;
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4) {
        const r = data[i], g = data[i + 1], b = data[i + 2];
        if (Math.abs(r - 0x26) < 12 && Math.abs(g - 0xa6) < 12 && Math.abs(b - 0x9a) < 12) up++;
        if (Math.abs(r - 0xef) < 12 && Math.abs(g - 0x53) < 12 && Math.abs(b - 0x50) < 12) down++;
      }
    }
    return { up, down };
  })()`);
}

Deno.test("dashboard: chart, older pages, series coverage, strip; screenshots desktop and mobile", async () => {
  const api = await startApi({ now: () => NOW });
  const browser = await launchBrowser();
  try {
    await seedThree(api);
    const { page, errors } = await openPage(browser);
    await page.goto(api.base + "/");
    await waitReady(page, "binance|BTC/USDT|1m");

    // The table lists every series with its state and coverage: first, last, count, gaps, holes, lag.
    const rows = await tableRows(page, "#series-table");
    assertEquals(rows.map((r) => r.slice(1, 5)), [
      ["binance", "BTC/USDT", "1m", "live"],
      ["binance", "ETH/USDT", "1h", "backfilling"],
      ["kraken", "SOL/USD", "5m", "new"],
    ]);
    assertEquals(rows[0].slice(5, 11), [
      "2024-02-26 12:00",
      "2024-03-01 11:56",
      (4 * DAY / MIN - 3 - 90 - 180).toLocaleString("en-US"),
      "90 in 1 gap",
      "1 · 3h",
      "3m",
    ]);
    assertEquals(rows[2].slice(5, 11), ["–", "–", "0", "none", "none", "–"]);
    // The strip's text comes with the series' gaps, after the chart is ready.
    await page.waitForFunction('document.getElementById("coverage-text").textContent !== ""');
    assertEquals(
      await page.textContent("#coverage-text"),
      "series 1 · 1m · 5,487 candles · 90 missing in 1 gap · 1 hole · live",
    );

    // The newest page of 1m candles; scrolling left loads older pages.
    assertEquals((await probe(page)).candles, 1000);
    const box = (await page.locator("#chart").boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (let i = 0; i < 30 && (await probe(page)).candles <= 1000; i++) {
      await page.mouse.wheel(-2000, 0);
      await page.keyboard.press("ArrowLeft");
      await page.mouse.down();
      await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2, { steps: 4 });
      await page.mouse.up();
      await page.mouse.move(box.x + 40, box.y + box.height / 2);
      await page.waitForTimeout(150);
    }
    assert((await probe(page)).candles > 1000, `scrolling back loaded older candles: ${(await probe(page)).candles}`);

    // The other series and a resampled timeframe.
    await page.selectOption("#series-select", "binance|ETH/USDT");
    await waitReady(page, "binance|ETH/USDT|1h");
    await page.click('#timeframes button[data-tf="4h"]');
    assertEquals((await waitReady(page, "binance|ETH/USDT|4h")).candles, 719, "120 days of 4h, the newest 5 h missing");
    assert((await page.textContent("#chart-sub"))!.includes("resampled from 1h"));
    await page.waitForTimeout(300);
    const colours = await drawnColours(page);
    assert(colours.up > 500 && colours.down > 500, `candles drawn: ${JSON.stringify(colours)}`);
    // Days come from the daily rollup of the stored hours, and the subtitle says so.
    await page.click('#timeframes button[data-tf="1d"]');
    await waitReady(page, "binance|ETH/USDT|1d");
    const sub = (await page.textContent("#chart-sub"))!;
    assert(sub.includes("resampled from 1h (1d rollup)"), sub);

    // A series with nothing stored says so over the chart.
    await page.selectOption("#series-select", "kraken|SOL/USD");
    await waitReady(page, "kraken|SOL/USD|5m");
    const centre = await page.evaluate<string>(`(() => {
      const r = document.getElementById("chart").getBoundingClientRect();
      return document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2).textContent;
    })()`);
    assertEquals(centre, "No candles yet");

    // Back to BTC at 15m: its coverage strip shows the gap and the hole.
    await page.click('#series-table tbody tr[data-symbol="BTC/USDT"]');
    await page.click('#timeframes button[data-tf="15m"]');
    await waitReady(page, "binance|BTC/USDT|15m");
    await page.waitForSelector("#coverage .seg.hole");
    assertEquals(await page.locator("#coverage .seg.gap").count(), 1);
    await page.waitForTimeout(300);
    await page.screenshot({ path: "/tmp/dash-desktop.png", fullPage: true });

    // A narrow (phone) viewport: nothing wider than the screen but the scrolling tables.
    const mobile = await openPage(browser, { width: 390, height: 844 });
    await mobile.page.goto(page.url());
    await waitReady(mobile.page, "binance|BTC/USDT|15m");
    await mobile.page.waitForTimeout(300);
    const overflow = await mobile.page.evaluate<number>("document.documentElement.scrollWidth");
    assert(overflow <= 390, `the page is ${overflow}px wide on a 390px screen`);
    await mobile.page.screenshot({ path: "/tmp/dash-mobile.png", fullPage: true });
    assertEquals([...errors, ...mobile.errors], [], "no errors in the pages");
  } finally {
    await browser.close();
    await api.close();
  }
});

Deno.test("dashboard: the URL holds series, timeframe and range; back and forward; bad links explained", async () => {
  const api = await startApi({ now: () => NOW });
  const browser = await launchBrowser();
  try {
    await seedThree(api);
    const { page, errors } = await openPage(browser);

    // A link to ETH at 4h over ten days two months back opens that chart and range.
    const from = NOW - 70 * DAY, to = NOW - 60 * DAY;
    const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
    await page.goto(`${api.base}/?exchange=binance&symbol=ETH/USDT&timeframe=4h&from=${iso(from)}&to=${iso(to)}`);
    await waitReady(page, "binance|ETH/USDT|4h");
    assertEquals(await page.textContent("#chart-title"), "ETH/USDT · binance");
    assertEquals(await page.inputValue("#series-select"), "binance|ETH/USDT");
    assertEquals(await page.getAttribute('#timeframes button[aria-checked="true"]', "data-tf"), "4h");
    await page.waitForTimeout(500);
    const shown = await page.evaluate<{ from: number; to: number }>(`(() => {
      const r = globalThis.__candlekeep.range();
      return { from: r.from, to: r.to };
    })()`);
    assert(Math.abs(shown.from - from) <= 4 * HOUR && Math.abs(shown.to - to) <= 4 * HOUR, JSON.stringify(shown));
    const url = urlParams(page);
    assertEquals([url.exchange, url.symbol, url.timeframe], ["binance", "ETH/USDT", "4h"]);
    assert(
      Math.abs(Date.parse(url.from) - from) <= 4 * HOUR && Math.abs(Date.parse(url.to) - to) <= 4 * HOUR,
      url.from,
    );
    assert(new URL(page.url()).search.includes("symbol=ETH/USDT"), "the symbol reads plainly in the URL");

    // Choosing another series writes it to the URL as a new history entry; back returns to the link.
    await page.selectOption("#series-select", "binance|BTC/USDT");
    await waitReady(page, "binance|BTC/USDT|1m");
    assertEquals(urlParams(page).symbol, "BTC/USDT");
    assertEquals(urlParams(page).timeframe, "1m");
    await page.click('#timeframes button[data-tf="1h"]');
    await waitReady(page, "binance|BTC/USDT|1h");
    assertEquals(urlParams(page).timeframe, "1h");
    await page.goBack();
    await waitReady(page, "binance|BTC/USDT|1m");
    await page.goBack();
    await waitReady(page, "binance|ETH/USDT|4h");
    assertEquals(urlParams(page).from, url.from, "back restores the range too");
    await page.goForward();
    await waitReady(page, "binance|BTC/USDT|1m");
    assertEquals(await page.isHidden("#notice"), true);

    // A range further back than ten pages opens on its own page, live updates paused, with a way back.
    const xrp = await api.series("binance", "XRP/USDT", "1m");
    const xrpFrom = NOW - 12_000 * MIN;
    await seed(api.t.sql, xrp, market(makeCandles(xrpFrom, 12_000)));
    const old = { from: xrpFrom + 60 * MIN, to: xrpFrom + 180 * MIN };
    await page.goto(
      `${api.base}/?exchange=binance&symbol=XRP/USDT&timeframe=1m&from=${iso(old.from)}&to=${iso(old.to)}`,
    );
    assertEquals(
      (await waitReady(page, "binance|XRP/USDT|1m")).candles,
      300,
      "the page that ends one range length after it",
    );
    assert((await page.textContent("#chart-sub"))!.includes("history (live updates paused)"));
    await page.waitForTimeout(300);
    assertEquals([urlParams(page).from, urlParams(page).to], [iso(old.from), iso(old.to)]);
    await page.click("#latest");
    assertEquals((await waitReady(page, "binance|XRP/USDT|1m")).candles, 1000);
    assert((await page.textContent("#chart-sub"))!.endsWith("· live"));
    assertEquals(await page.isHidden("#latest"), true);

    // Bad links: a clear message, then the first series.
    const bad: [string, string][] = [
      ["exchange=binance&symbol=NOPE/USDT&timeframe=1m", "there is no series NOPE/USDT on binance"],
      ["exchange=binance&symbol=ETH/USDT&timeframe=7x", 'timeframe "7x" is not a timeframe such as 1m, 4h or 1d'],
      ["exchange=binance&symbol=ETH/USDT&timeframe=1m", "1m cannot be shown for ETH/USDT on binance: stored 1h"],
      [
        "exchange=binance&symbol=ETH/USDT&timeframe=1h&from=2024-02-01&to=2024-01-01",
        "Cannot use the link's range: from=2024-02-01 is not before to=2024-01-01.",
      ],
      ["exchange=binance&symbol=ETH/USDT&timeframe=1h&from=yesterday&to=2024-01-01", 'from="yesterday"'],
    ];
    for (const [query, message] of bad) {
      await page.goto(`${api.base}/?${query}`);
      const p = await waitReady(page);
      const text = (await page.textContent("#notice-text"))!;
      assert(await page.isVisible("#notice"), `no message for ${query}`);
      assert(text.includes(message), `${query}: ${text}`);
      if (query.includes("from=")) {
        assertEquals(p.selected, "binance|ETH/USDT|1h", "a bad range keeps the good series");
      } else {
        assertEquals(p.selected, "binance|BTC/USDT|1m", `${query} falls back to the first series`);
        assertEquals(urlParams(page).symbol, "BTC/USDT", "the URL names what is shown");
      }
    }
    await page.screenshot({ path: "/tmp/dash-bad-link.png" });
    await page.click("#notice-close");
    assertEquals(await page.isHidden("#notice"), true);
    assertEquals(errors, [], "no errors in the page");
  } finally {
    await browser.close();
    await api.close();
  }
});
