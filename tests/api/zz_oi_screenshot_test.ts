import { registerSeries } from "../../src/ingest/series.ts";
import { launchBrowser, openPage, waitReady } from "./browser.ts";
import { DAY, HOUR, makeCandles, seed, startApi } from "./helpers.ts";

const NOW = Date.UTC(2024, 2, 1, 12, 0);
Deno.test("screenshot", async () => {
  const api = await startApi({ now: () => NOW });
  const browser = await launchBrowser();
  try {
    const sql = api.t.sql;
    const trade = await registerSeries(sql, { exchange: "binance", symbol: "BTC/USDT:USDT", timeframe: "1h" });
    await seed(sql, trade.id, makeCandles(NOW - 10 * DAY, 10 * 24, HOUR));
    await sql`insert into funding_rates (exchange, symbol, ts, rate, mark_price) values
      ('binance', 'BTC/USDT:USDT', to_timestamp(${(NOW - 8 * HOUR) / 1000}), '0.00010000', '61000.10')`;
    const oi = Array.from({ length: 96 }, (_, i) => {
      const amount = (70_000 + 1_500 * Math.sin(i / 5) + i * 37.125).toFixed(3);
      return { ts: NOW - (96 - i) * HOUR, amount, value: (Number(amount) * (61_000.5 + 300 * Math.cos(i / 7))).toFixed(8) };
    });
    await sql`insert into open_interest_progress (exchange, symbol, period, backfilled_at) values ('binance', 'BTC/USDT:USDT', '1h', now())`;
    for (const r of oi) {
      await sql`insert into open_interest (exchange, symbol, period, ts, amount, value)
        values ('binance', 'BTC/USDT:USDT', '1h', to_timestamp(${r.ts / 1000}), ${r.amount}, ${r.value})`;
    }
    const { page, errors } = await openPage(browser);
    page.on("response", (r) => { if (r.status() >= 400) console.log("HTTP", r.status(), r.url()); });
    await page.goto(`${api.base}/?exchange=binance&symbol=BTC/USDT:USDT&timeframe=1h`);
    await waitReady(page, "binance|BTC/USDT:USDT|1h");
    await page.waitForFunction("globalThis.__candlekeep.openInterest?.points > 0");
    await page.waitForTimeout(500);
    await page.screenshot({ path: "/tmp/oi_full.png", fullPage: true });
    await page.locator("#oi-panel").screenshot({ path: "/tmp/oi_panel.png" });
    const eth = await registerSeries(sql, { exchange: "binance", symbol: "ETH/USDT:USDT", timeframe: "1h" });
    await seed(sql, eth.id, makeCandles(NOW - 10 * DAY, 10 * 24, HOUR));
    for (const r of oi) {
      await sql`insert into open_interest (exchange, symbol, period, ts, amount, value)
        values ('binance', 'ETH/USDT:USDT', '1h', to_timestamp(${r.ts / 1000}), ${r.amount}, null)`;
    }
    await page.goto(`${api.base}/?exchange=binance&symbol=ETH/USDT:USDT&timeframe=1h`);
    await waitReady(page, "binance|ETH/USDT:USDT|1h");
    await page.waitForFunction("globalThis.__candlekeep.openInterest?.points > 0");
    await page.waitForTimeout(500);
    await page.mouse.move(500, 700);
    await page.locator("#oi-panel").screenshot({ path: "/tmp/oi_novalue.png" });
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(500);
    await page.locator("#oi-panel").screenshot({ path: "/tmp/oi_narrow.png" });
    console.log("errors", errors);
  } finally {
    await browser.close();
    await api.close();
  }
});
