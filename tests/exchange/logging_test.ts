/**
 * The exchange layer's logs stay quiet: retries and per-page detail are debug lines, a
 * rate-limit pause is one warning however many requests it hit. Real ccxt against the fake.
 *
 * @module
 */
import { assert, assertEquals } from "../support/assert.ts";
import { setupLogging } from "../../src/log.ts";
import { createRedactor } from "../../src/secrets.ts";
import { DIALECTS, minutesAgo, withFake } from "./helpers.ts";

interface Line {
  level: string;
  category: string;
  message: string;
}

/** Captures every `candlekeep.exchange` line at debug level and up while `fn` runs. */
async function capture(fn: () => Promise<void>): Promise<Line[]> {
  const lines: Line[] = [];
  setupLogging({
    level: "debug",
    format: "json",
    write: (l) => lines.push(JSON.parse(l) as Line),
    redactor: createRedactor([]),
  });
  try {
    await fn();
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {}, redactor: createRedactor([]) });
  }
  return lines.filter((l) => l.category === "candlekeep.exchange");
}

const loud = (lines: Line[]) => lines.filter((l) => l.level !== "debug" && l.level !== "info");

for (const dialect of DIALECTS) {
  Deno.test(`${dialect}: retried 5xx are debug lines; a clean walk logs no warning`, async () => {
    const script = [{ status: 500 }, { status: 503 }, { status: 502 }];
    await withFake(dialect, { script }, async (fake, client) => {
      const lines = await capture(async () => {
        const range = await client.fetchRange("BTC/USDT", "1m", minutesAgo(3000), minutesAgo(10));
        assertEquals(range.candles.length, 2990);
      });
      assertEquals(fake.stats.rejections.filter((r) => r.status >= 500).length, 3, "three 5xx served");
      const retries = lines.filter((l) => l.message.includes("retrying in"));
      assertEquals(retries.length, 3, JSON.stringify(lines));
      assert(retries.every((l) => l.level === "debug"), JSON.stringify(retries));
      assert(lines.some((l) => l.level === "debug" && /: page .* candles$/.test(l.message)), "per-page detail");
      assertEquals(loud(lines), [], "no warning or error from the exchange layer");
    });
  });

  Deno.test(`${dialect}: one warning per rate-limit pause, not one per 429`, async () => {
    const script = Array.from({ length: 5 }, () => ({ status: 429, retryAfterSec: 1 }));
    await withFake(dialect, { script }, async (fake, client) => {
      const lines = await capture(async () => {
        const pages = await Promise.all(
          [0, 1, 2, 3].map((i) =>
            client.fetchPage("BTC/USDT", "1m", minutesAgo(400 + 100 * i), minutesAgo(300 + 100 * i))
          ),
        );
        assert(pages.every((p) => p.candles.length === 100), "every page arrives after the pause");
      });
      assertEquals(fake.stats.rejections.filter((r) => r.status === 429).length, 5, "five 429s served");
      assertEquals(client.stats().rateLimited, 5);
      const limited = lines.filter((l) => l.message.includes("rate limited"));
      assertEquals(limited.length, 5, JSON.stringify(lines));
      assertEquals(limited.filter((l) => l.level === "warning").length, 1, JSON.stringify(limited));
      assertEquals(loud(lines).length, 1, JSON.stringify(loud(lines)));
    });
  });
}
