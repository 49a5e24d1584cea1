/**
 * The dashboard's price selector (issue 13): a contract with trade and mark candles shows a
 * trade/mark switch; mark candles load from `price=mark`, the subtitle and the address bar say
 * so, and a spot market shows no switch; a perpetual's latest funding rates and its stored open
 * interest show under the chart. Mark candles (volume 0) draw no volume bars and no "Vol" in the
 * legend; on a phone the funding table fits its panel.
 */
import { registerSeries } from "../../src/ingest/series.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { launchBrowser, openPage, tableRows, urlParams, waitReady } from "./browser.ts";
import { DAY, getJson, HOUR, makeCandles, seed, startApi } from "./helpers.ts";

const NOW = Date.UTC(2024, 2, 1, 12, 0);

Deno.test("dashboard: a contract's trade and mark candles behind a price switch", async () => {
  const api = await startApi({ now: () => NOW });
  const browser = await launchBrowser();
  try {
    const sql = api.t.sql;
    // Prices with two decimals, as a market with a 0.01 tick has.
    const cents = (n: number) => Math.round(n * 100) / 100;
    const candles = makeCandles(NOW - 10 * DAY, 10 * 24, HOUR).map((c) => ({
      ...c,
      open: cents(c.open),
      high: cents(c.high),
      low: cents(c.low),
      close: cents(c.close),
    }));
    const trade = await registerSeries(sql, { exchange: "binance", symbol: "BTC/USDT:USDT", timeframe: "1h" });
    await seed(sql, trade.id, candles);
    const mark = await registerSeries(sql, {
      exchange: "binance",
      symbol: "BTC/USDT:USDT",
      timeframe: "1h",
      price: "mark",
    });
    // Mark prices 5% above the trades, so the two charts cannot be confused.
    const marked = candles.map((c) => ({
      ...c,
      open: cents(c.open * 1.05),
      high: cents(c.high * 1.05),
      low: cents(c.low * 1.05),
      close: cents(c.close * 1.05),
      volume: 0,
    }));
    await seed(sql, mark.id, marked);
    const spot = await registerSeries(sql, { exchange: "binance", symbol: "ETH/USDT", timeframe: "1h" });
    await seed(sql, spot.id, candles);
    // A perpetual whose funding and open interest are not collected.
    const bare = await registerSeries(sql, { exchange: "binance", symbol: "SOL/USDT:USDT", timeframe: "1h" });
    await seed(sql, bare.id, candles);

    // Two funding rows of the perpetual, as the exchange published them.
    await sql`insert into funding_rates (exchange, symbol, ts, rate, mark_price) values
      ('binance', 'BTC/USDT:USDT', to_timestamp(${(NOW - 8 * HOUR) / 1000}), '0.00010000', '61000.10'),
      ('binance', 'BTC/USDT:USDT', to_timestamp(${NOW / 1000}), '-0.00002500', '61200.20')`;

    // Two days of hourly open interest of the perpetual, as the exchange published it.
    const oi = Array.from({ length: 48 }, (_, i) => {
      const amount = (70_000 + 1_500 * Math.sin(i / 5) + i * 37.125).toFixed(3);
      return { ts: NOW - (48 - i) * HOUR, amount, value: (Number(amount) * 61_000.5).toFixed(8) };
    });
    await sql`insert into open_interest_progress (exchange, symbol, period, history_from, backfilled_at,
      checked_through) values ('binance', 'BTC/USDT:USDT', '1h', to_timestamp(${oi[0].ts / 1000}),
      to_timestamp(${NOW / 1000}), to_timestamp(${oi.at(-1)!.ts / 1000}))`;
    for (const r of oi) {
      await sql`insert into open_interest (exchange, symbol, period, ts, amount, value)
        values ('binance', 'BTC/USDT:USDT', '1h', to_timestamp(${r.ts / 1000}), ${r.amount}, ${r.value})`;
    }

    const { page, errors } = await openPage(browser);
    await page.goto(`${api.base}/?exchange=binance&symbol=BTC/USDT:USDT&timeframe=1h`);
    await waitReady(page, "binance|BTC/USDT:USDT|1h");
    assertEquals(await page.isVisible("#prices"), true);
    assertEquals(await page.locator("#prices button").allTextContents(), ["trade", "mark"]);
    const tradeClose = await page.textContent("#candle-table tbody tr:first-child td:nth-child(5)");
    // Trade candles have volume: bars and "Vol" in the legend.
    assertEquals(await page.evaluate("globalThis.__candlekeep.volumeShown()"), true);
    assert((await page.textContent("#legend"))!.includes("Vol "), "trade legend shows the volume");
    assertEquals((await tableRows(page, "#candle-table"))[0].length, 6, "the candle table has a Volume column");
    // A perpetual shows its latest funding rates under the chart, newest first, exact decimals;
    // mark prices as the candle table writes prices (thousands separators, the market's 2 decimals).
    await page.waitForSelector("#funding-panel:not([hidden]) #funding-table tbody tr td.num");
    const funding = await tableRows(page, "#funding-table");
    assertEquals(funding, [
      ["2024-03-01 12:00", "-0.0025%", "-0.000025", "61,200.20"],
      ["2024-03-01 04:00", "+0.0100%", "0.0001", "61,000.10"],
    ]);
    // ... and its open interest: every stored point on a chart of its own, the period and the latest amount and value.
    await page.waitForFunction("globalThis.__candlekeep.openInterest?.points > 0");
    assertEquals(await page.isVisible("#oi-panel"), true);
    assertEquals(
      await page.evaluate("globalThis.__candlekeep.openInterest"),
      { period: "1h", points: 48, hasValue: true },
    );
    const oiSub = (await page.textContent("#oi-panel .oi-sub"))!;
    assert(oiSub.startsWith("1h period · 48 stored from 2024-02-28 12:00 · live"), oiSub);
    const oiLegend = (await page.textContent("#oi-panel .oi-legend"))!;
    const last = oi.at(-1)!;
    const grouped = (text: string, decimals: number) =>
      Number(text).toLocaleString("en-US", { maximumFractionDigits: decimals });
    assert(oiLegend.includes("2024-03-01 11:00"), oiLegend);
    assert(oiLegend.includes(`Amount ${grouped(last.amount, 8)}`), oiLegend);
    assert(oiLegend.includes(`Value ${grouped(last.value, 2)}`), oiLegend);
    assert((await page.locator("#oi-panel canvas").count()) > 0, "no open-interest chart drawn");

    await page.click('#prices button[data-price="mark"]');
    await waitReady(page, "binance|BTC/USDT:USDT|1h|mark");
    const sub = (await page.textContent("#chart-sub"))!;
    assert(sub.includes("mark price"), sub);
    assertEquals(urlParams(page).price, "mark");
    const markClose = await page.textContent("#candle-table tbody tr:first-child td:nth-child(5)");
    assert(markClose !== tradeClose, `mark close ${markClose} equals trade close ${tradeClose}`);
    // Mark candles have volume 0: no volume bars, no "Vol 0" in the legend.
    assertEquals(await page.evaluate("globalThis.__candlekeep.volumeShown()"), false);
    const markLegend = (await page.textContent("#legend"))!;
    assert(markLegend.includes("C ") && !markLegend.includes("Vol"), markLegend);
    assertEquals((await tableRows(page, "#candle-table"))[0].length, 5, "no Volume column for mark candles");
    // The page names its price.
    const markPage = await getJson(
      `${api.base}/v1/candles?exchange=binance&symbol=BTC/USDT:USDT&timeframe=1h&limit=1&price=mark`,
    );
    assertEquals([markPage.body.price, markPage.body.timeframe], ["mark", "1h"]);
    // On a phone (390 px), the funding table fits its panel: every column shows without scrolling.
    const phone = await openPage(browser, { width: 390, height: 844 });
    await phone.page.goto(`${api.base}/?exchange=binance&symbol=BTC/USDT:USDT&timeframe=1h&price=mark`);
    await waitReady(phone.page, "binance|BTC/USDT:USDT|1h|mark");
    assertEquals(await phone.page.evaluate("globalThis.__candlekeep.volumeShown()"), false);
    await phone.page.waitForSelector("#funding-panel:not([hidden]) #funding-table tbody tr td.num");
    const widths = await phone.page.evaluate(`(() => {
      const box = document.querySelector("#funding-panel .table-scroll");
      return { page: document.documentElement.scrollWidth, box: box.clientWidth, table: box.scrollWidth };
    })()`) as { page: number; box: number; table: number };
    assert(widths.page <= 390 && widths.table <= widths.box, `the funding table is cut: ${JSON.stringify(widths)}`);
    assertEquals(phone.errors, []);
    await phone.page.close();
    // Days from the mark series: resampled from its own hours (the daily rollup of the mark series).
    await page.click('#timeframes button[data-tf="1d"]');
    await waitReady(page, "binance|BTC/USDT:USDT|1d|mark");

    // A spot market has no price switch.
    await page.selectOption("#series-select", "binance|ETH/USDT");
    await waitReady(page, "binance|ETH/USDT|1h");
    assertEquals(await page.evaluate("globalThis.__candlekeep.volumeShown()"), true, "volume back for trade candles");
    assert((await page.textContent("#legend"))!.includes("Vol "), "trade legend shows the volume again");
    assertEquals(await page.isVisible("#prices"), false);
    assertEquals(await page.isVisible("#funding-panel"), false);
    assertEquals(await page.isVisible("#oi-panel"), false);
    assertEquals(await page.evaluate("globalThis.__candlekeep.openInterest.points"), 0);
    // Nor does a perpetual without stored funding or open interest (and nothing is asked for).
    await page.selectOption("#series-select", "binance|SOL/USDT:USDT");
    await waitReady(page, "binance|SOL/USDT:USDT|1h");
    assertEquals([await page.isVisible("#funding-panel"), await page.isVisible("#oi-panel")], [false, false]);
    assertEquals(errors, []);
  } finally {
    await browser.close();
    await api.close();
  }
});
