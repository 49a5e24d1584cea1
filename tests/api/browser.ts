/**
 * Headless Chromium (playwright-core) for the dashboard tests: launch, open a page that records
 * its errors, wait for the dashboard's probe, and read the rendered text.
 *
 * @module
 */
import type { Browser, Page } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";

/** What the dashboard exposes for tests (`globalThis.__candlekeep`). */
export interface Probe {
  candles: number;
  series: number;
  selected: string | null;
  ready: boolean;
  polls: number;
  precision: { price: number; volume: number };
}

/** Launches headless Chromium; throws with the install command when it is missing. */
export async function launchBrowser(): Promise<Browser> {
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
  return await chromium.launch({
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
}

/** A page of the desktop (or the given) size that collects page errors and console errors. */
export async function openPage(
  browser: Browser,
  options: { width?: number; height?: number } = {},
): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({
    viewport: { width: options.width ?? 1360, height: options.height ?? 900 },
    deviceScaleFactor: 1,
  });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // Chromium logs every 503 it receives; the dashboard retries those after Retry-After (api.js),
    // and a page that still failed shows it in its own text, which the tests read.
    if (m.type() === "error" && !/status of 503 \(Service Unavailable\)/.test(m.text())) errors.push(m.text());
  });
  return { page, errors };
}

/** The dashboard's probe. */
export function probe(page: Page): Promise<Probe> {
  return page.evaluate(() => {
    const p = (globalThis as unknown as { __candlekeep: Probe }).__candlekeep;
    return { ...p, times: undefined };
  });
}

/** Open times of the loaded candles, oldest first. */
export function loadedTimes(page: Page): Promise<string[]> {
  return page.evaluate("globalThis.__candlekeep.times()");
}

/** Waits until the chart has loaded (`selected` = "exchange|symbol|timeframe" when given). */
export async function waitReady(page: Page, selected?: string, timeout = 20_000): Promise<Probe> {
  await page.waitForFunction(
    (want) => {
      const p = (globalThis as unknown as { __candlekeep?: Probe }).__candlekeep;
      return p?.ready === true && (want === null || p.selected === want);
    },
    selected ?? null,
    { timeout },
  );
  return await probe(page);
}

/** Trimmed text of every cell of the rows of `table` (a CSS selector). */
export function tableRows(page: Page, table: string): Promise<string[][]> {
  return page.evaluate(`Array.from(document.querySelectorAll(${JSON.stringify(table + " tbody tr")}),
    (tr) => Array.from(tr.querySelectorAll("td"), (td) => (td.textContent || "").replace(/\\s+/g, " ").trim()))`);
}

/** Query parameters of the page's current URL. */
export function urlParams(page: Page): Record<string, string> {
  return Object.fromEntries(new URL(page.url()).searchParams);
}
