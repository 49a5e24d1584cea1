/**
 * Adding and removing series from the dashboard with the API token, against the real ingest engine
 * (real ccxt and the fake exchange): without a token the controls say what is needed; the API's
 * 401, 403, 400 and 422 messages are shown; an added series is backfilled and listed; a removed one
 * stops after a confirm. The token lives in sessionStorage only.
 */
import type { Page } from "playwright-core";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { loadConfig } from "../../src/config.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { ingestWorld } from "../ingest/helpers.ts";
import { launchBrowser, openPage, tableRows, waitReady } from "./browser.ts";

const TOKEN = "a-long-enough-test-token";

/** Submits the add form and returns the message it shows. */
async function add(page: Page, fields: Record<string, string>): Promise<string> {
  for (const [name, value] of Object.entries(fields)) await page.fill(`#add-form [name="${name}"]`, value);
  const before = await page.textContent("#manage-msg");
  await page.click("#add-submit");
  await page.waitForFunction(
    (old) => {
      const text = (globalThis as unknown as { document: { getElementById(id: string): { textContent: string } } })
        .document.getElementById("manage-msg").textContent;
      return text !== old && text !== "Adding…";
    },
    before,
  );
  return (await page.textContent("#manage-msg"))!;
}

/** The API's own message for a POST /v1/series. */
async function apiMessage(base: string, token: string, body: unknown): Promise<string> {
  const res = await fetch(`${base}/v1/series`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return `${res.status}: ${(await res.json()).error}`;
}

Deno.test("dashboard: add and remove series with the token; API errors shown; token only in sessionStorage", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", BACKFILL_SINCE: "2h" } });
  const ingestor = w.ingestor();
  const registry = new Registry();
  const api = serveApi({ db: w.db, config: loadConfig({ ...w.env, API_TOKEN: TOKEN }), registry, ingest: ingestor }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const readOnly = serveApi({ db: w.db, config: loadConfig(w.env), registry: new Registry(), ingest: ingestor }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const base = `http://127.0.0.1:${api.port}`;
  const browser = await launchBrowser();
  try {
    await ingestor.syncSeries();
    const exchange = w.fake.exchangeId;
    const { page, errors } = await openPage(browser);
    await page.goto(base + "/");
    await waitReady(page, `${exchange}|BTC/USDT|1m`);

    // Without a token: the controls say what is needed.
    assertEquals(await page.isDisabled("#add-submit"), true);
    assert((await page.textContent("#token-hint"))!.includes("needs the service's API_TOKEN"));
    const remove = page.locator('#series-table tr[data-symbol="BTC/USDT"] button.remove');
    assertEquals(await remove.isDisabled(), true);
    assertEquals(await remove.getAttribute("title"), "Enter the API token below to remove series");

    // A wrong token: the API's 401 message.
    await page.fill("#token", "wrong-token-wrong-token");
    assertEquals(await remove.isDisabled(), false, "the table follows the token at once");
    const eth = { exchange, symbol: "ETH/USDT", timeframe: "5m", since: "2h" };
    const unauthorized = await apiMessage(base, "wrong-token-wrong-token", eth);
    assert(unauthorized.startsWith("401: "), unauthorized);
    assertEquals(await add(page, eth), `Cannot add the series: ${unauthorized}`);

    // The right token: a bad `since` (400) and an unknown symbol (422) show the API's messages.
    await page.fill("#token", TOKEN);
    const badSince = { ...eth, since: "soon" };
    const badRequest = await apiMessage(base, TOKEN, badSince);
    assert(badRequest.startsWith("400: "), badRequest);
    assertEquals(await add(page, badSince), `Cannot add the series: ${badRequest}`);
    const nope = await add(page, { ...eth, symbol: "NOPE/USDT" });
    assert(nope.startsWith("Cannot add the series: 422: ") && nope.includes("NOPE/USDT"), nope);

    // Added: listed at once, then backfilled by the engine (the table refreshes itself).
    const added = await add(page, eth);
    const id = Number(/^Added series (\d+) /.exec(added)?.[1]);
    assert(id > 0, added);
    assertEquals(added, `Added series ${id} (ETH/USDT 5m on ${exchange}); its backfill has started.`);
    const row = `#series-table tr[data-id="${id}"]`;
    await page.waitForSelector(row);
    await page.waitForFunction(
      (sel) =>
        (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } })
          .document.querySelector(`${sel} .badge`)?.textContent === "live",
      row,
      { timeout: 30_000 },
    );
    assert(
      (await page.locator("#series-select option").allTextContents()).includes(`ETH/USDT · ${exchange}`),
      "the new market is offered in the selector",
    );
    const [{ n }] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles where series_id = ${id}`;
    assert(n >= 23, `${n} candles backfilled`);
    const listed = (await tableRows(page, "#series-table")).find((r) => r[0] === String(id))!;
    assertEquals(listed.slice(1, 5), [exchange, "ETH/USDT", "5m", "live"]);
    assertEquals(listed[7], n.toLocaleString("en-US"));

    // Remove: nothing without the confirm; stopped (data kept) with it.
    const dialogs: string[] = [];
    page.once("dialog", (d) => {
      dialogs.push(d.message());
      d.dismiss();
    });
    await page.click(`${row} button.remove`);
    await page.waitForTimeout(300);
    const [kept] = await w.t.sql<{ active: boolean }[]>`select active from series where id = ${id}`;
    assertEquals(kept.active, true, "dismissed: still collected");
    page.once("dialog", (d) => {
      dialogs.push(d.message());
      d.accept();
    });
    await page.click(`${row} button.remove`);
    await page.waitForFunction(
      (sel) =>
        (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } })
          .document.querySelector(`${sel} .badge`)?.textContent === "stopped",
      row,
    );
    const question = `Stop updating ETH/USDT 5m on ${exchange} (series ${id})? Its stored candles are kept.`;
    assertEquals(dialogs, [question, question]);
    assertEquals(
      await page.textContent("#manage-msg"),
      `Removed ETH/USDT 5m on ${exchange} (series ${id}): it is no longer updated; its candles are kept.`,
    );
    assertEquals(await page.locator(`${row} button.remove`).count(), 0, "a stopped series has no remove button");
    const [gone] = await w.t.sql<{ active: boolean; n: number }[]>`
      select active, (select count(*)::int from candles where series_id = ${id}) as n from series where id = ${id}`;
    assertEquals(gone, { active: false, n });

    // The token is in this tab's sessionStorage only: not in the URL, not in localStorage.
    const stored = await page.evaluate<[string | null, number]>(
      "[sessionStorage.getItem('candlekeep.token'), localStorage.length]",
    );
    assertEquals(stored, [TOKEN, 0]);
    assert(!page.url().includes(TOKEN), page.url());
    await page.screenshot({ path: "/tmp/dash-manage.png", fullPage: true });

    // A service without API_TOKEN: its 403 explanation.
    const other = await openPage(browser);
    await other.page.goto(`http://127.0.0.1:${readOnly.port}/`);
    await waitReady(other.page);
    await other.page.fill("#token", TOKEN);
    const forbidden = await apiMessage(`http://127.0.0.1:${readOnly.port}`, TOKEN, eth);
    assert(forbidden.startsWith("403: "), forbidden);
    assertEquals(await add(other.page, eth), `Cannot add the series: ${forbidden}`);
    assertEquals([...errors, ...other.errors].filter((e) => !/status of 40[0-9]|status of 422/.test(e)), []);
  } finally {
    await browser.close();
    await api.shutdown();
    await readOnly.shutdown();
    await w.close();
  }
});
