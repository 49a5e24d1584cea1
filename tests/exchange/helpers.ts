/**
 * Shared set-up for the exchange tests: a fake exchange plus a client pointed at it.
 *
 * @module
 */
import { ExchangeClient, type ExchangeClientOptions } from "../../src/exchange/client.ts";
import {
  type FakeBehaviour,
  type FakeDialect,
  type FakeExchange,
  startFakeExchange,
} from "../support/fake_exchange.ts";

/** Both dialects every behavioural test runs against. */
export const DIALECTS: FakeDialect[] = ["binance", "bybit"];

/** Fast retry settings for tests. */
export const FAST: ExchangeClientOptions = { baseDelayMs: 20, maxDelayMs: 200, defaultBanMs: 1000 };

/** Runs `fn` with a fake of `dialect` and a started client on it; closes both afterwards. */
export async function withFake(
  dialect: FakeDialect,
  behaviour: Partial<FakeBehaviour>,
  fn: (fake: FakeExchange, client: ExchangeClient) => Promise<void>,
  options: ExchangeClientOptions & { topSymbols?: number; ccxt?: Record<string, unknown> } = {},
): Promise<void> {
  const fake = await startFakeExchange({ dialect, behaviour });
  let client: ExchangeClient | undefined;
  try {
    client = await ExchangeClient.create(dialect, {
      exchanges: [dialect],
      ccxtConfig: { [dialect]: { ...fake.ccxtConfig(), ...options.ccxt } },
      symbols: ["BTC/USDT"],
      topSymbols: options.topSymbols ?? 0,
      quote: "USDT",
      timeframes: ["1m"],
    }, { ...FAST, ...options });
    await fn(fake, client);
  } finally {
    client?.close();
    await fake.close();
  }
}

/** Start of the current minute minus `n` minutes. */
export function minutesAgo(n: number): number {
  return Math.floor(Date.now() / 60_000) * 60_000 - n * 60_000;
}
