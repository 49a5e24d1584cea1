import { assert, assertEquals } from "../support/assert.ts";
import { DAY, HOUR, makeCandles, MIN, seed, startApi } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = "/tmp/candlekeep-dashboard.png";

Deno.test("dashboard: renders the chart, scrolls back, lists series; screenshot", async () => {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `Cannot run the browser test: ${CHROMIUM} is missing; install it with apt-get install -y chromium (CI does)`,
    );
  }
  // playwright-core probes /proc/sys/fs/binfmt_misc/WSLInterop at import time (is-wsl), which
  // Deno's --allow-read does not cover; this variable defers that probe to the `open` helper,
  // which launching a browser never calls. Hence the dynamic import after setting it.
  Deno.env.set("__IS_WSL_TEST__", "1");
  const { chromium } = await import("playwright-core");
  const now = Date.UTC(2024, 2, 1, 12, 0);
  const api = await startApi({ now: () => now });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const btc = await api.series("binance", "BTC/USDT", "1m");
    const btcFrom = now - 4 * DAY;
    await seed(
      api.t.sql,
      btc,
      makeCandles(btcFrom, 4 * DAY / MIN - 3).filter((c) => c.ts < btcFrom + DAY || c.ts >= btcFrom + DAY + 90 * MIN),
    );
    await api.t.sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason) values
      (${btc}, to_timestamp(${(btcFrom + 2 * DAY) / 1000}), to_timestamp(${(btcFrom + 2 * DAY + 3 * HOUR) / 1000}),
       'no data from exchange')`;
    await api.t.sql`delete from candles where series_id = ${btc}
      and ts >= to_timestamp(${(btcFrom + 2 * DAY) / 1000}) and ts < to_timestamp(${
      (btcFrom + 2 * DAY + 3 * HOUR) / 1000
    })`;
    await api.t.sql`update series set state = 'live' where id = ${btc}`;
    const eth = await api.series("binance", "ETH/USDT", "1h");
    await seed(
      api.t.sql,
      eth,
      makeCandles(now - 120 * DAY, 120 * 24 - 5, HOUR).map((c) => ({ ...c, volume: c.volume * 40 })),
    );
    await api.t.sql`update series set state = 'backfilling' where id = ${eth}`;
    await api.series("kraken", "SOL/USD", "5m");

    const page = await browser.newPage({ viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(api.base + "/");
    await page.waitForFunction(
      () => {
        const p = (globalThis as unknown as { __candlekeep?: { ready: boolean; candles: number } }).__candlekeep;
        return p?.ready && p.candles > 0;
      },
      undefined,
      { timeout: 20_000 },
    );

    // The table lists every series with its state.
    const rows = await page.evaluate<string[][]>(`Array.from(document.querySelectorAll("#series-table tbody tr"),
      (tr) => Array.from(tr.querySelectorAll("td"), (td) => (td.textContent || "").trim()))`);
    assertEquals(rows.map((r) => [r[1], r[2], r[3], r[4]]), [
      ["binance", "BTC/USDT", "1m", "live"],
      ["binance", "ETH/USDT", "1h", "backfilling"],
      ["kraken", "SOL/USD", "5m", "new"],
    ]);
    assertEquals(rows[0][5], (4 * DAY / MIN - 3 - 90 - 180).toLocaleString("en-US"));
    assertEquals(rows[0][8], "90", "missing candles outside the confirmed hole");

    // The first series loads the newest page of 1m candles; scrolling left loads older pages.
    const probe = () =>
      page.evaluate(() =>
        (globalThis as unknown as { __candlekeep: { candles: number; selected: string } }).__candlekeep
      );
    assertEquals((await probe()).candles, 1000);
    const box = (await page.locator("#chart").boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (let i = 0; i < 30 && (await probe()).candles <= 1000; i++) {
      await page.mouse.wheel(-2000, 0);
      await page.keyboard.press("ArrowLeft");
      await page.mouse.down();
      await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2, { steps: 4 });
      await page.mouse.up();
      await page.mouse.move(box.x + 40, box.y + box.height / 2);
      await page.waitForTimeout(150);
    }
    assert((await probe()).candles > 1000, `scrolling back loaded older candles: ${(await probe()).candles}`);

    // Pick the other series and a resampled timeframe.
    await page.selectOption("#series-select", "binance|ETH/USDT");
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { __candlekeep: { ready: boolean; selected: string } }).__candlekeep;
      return p.ready && p.selected === "binance|ETH/USDT|1h";
    });
    await page.click('#timeframes button[data-tf="4h"]');
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { __candlekeep: { ready: boolean; selected: string } }).__candlekeep;
      return p.ready && p.selected === "binance|ETH/USDT|4h";
    });
    assertEquals((await probe()).candles, 719, "120 days of 4h buckets, the newest 5 hours missing");
    assert((await page.textContent("#chart-sub"))!.includes("resampled from 1h"));

    // The chart canvas has candles drawn: many distinct up and down coloured pixels.
    await page.waitForTimeout(300);
    // Runs in the page (a string, so this file needs no DOM types).
    const colours = await page.evaluate<{ up: number; down: number }>(`(() => {
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
    assert(colours.up > 500 && colours.down > 500, `candles drawn: ${JSON.stringify(colours)}`);
    // Back to BTC at 15m for the screenshot, with its coverage strip showing gaps and holes.
    await page.click('#series-table tbody tr[data-key="binance|BTC/USDT"]');
    await page.click('#timeframes button[data-tf="15m"]');
    await page.waitForFunction(() => {
      const p = (globalThis as unknown as { __candlekeep: { ready: boolean; selected: string } }).__candlekeep;
      return p.ready && p.selected === "binance|BTC/USDT|15m";
    });
    await page.waitForSelector("#coverage .seg.hole");
    assertEquals(await page.locator("#coverage .seg.gap").count(), 1);
    await page.waitForTimeout(300);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assertEquals(errors, [], "no errors in the page");
  } finally {
    await browser.close();
    await api.close();
  }
});
