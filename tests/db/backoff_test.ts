import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../support/assert.ts";
import { DatabaseUnavailableError, openDatabase } from "../../src/db/client.ts";
import { backoffDelay } from "../../src/retry.ts";
import { sharedServer } from "../support/pg.ts";

/** A loopback port with nothing listening on it. */
function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("backoff: delays double from 1 s with bounded jitter", () => {
  const mid = () => 0.5;
  assertEquals([1, 2, 3, 4, 5].map((r) => backoffDelay(r, { random: mid })), [1000, 2000, 4000, 8000, 16000]);
  assertEquals(backoffDelay(1, { random: () => 0 }), 800);
  assertEquals(backoffDelay(5, { random: () => 0.999999 }), 19200);
});

Deno.test("start-up: nothing listening → gives up after 5 retries with 1, 2, 4, 8, 16 s delays", async () => {
  const port = deadPort();
  const slept: number[] = [];
  const attempts: number[] = [];
  const error = await assertRejects(
    () =>
      openDatabase(`postgres://candlekeep:secret-pw@127.0.0.1:${port}/candles`, {
        sleep: (ms) => {
          slept.push(ms);
          return Promise.resolve();
        },
        onAttemptFailed: (attempt) => attempts.push(attempt),
        connectTimeout: 2,
      }),
    DatabaseUnavailableError,
  );
  assertEquals(attempts, [1, 2, 3, 4, 5]);
  assertEquals(error.attempts, 6, "the first try plus 5 retries");
  assertEquals(slept.length, 5);
  [1000, 2000, 4000, 8000, 16000].forEach((expected, i) => assertAlmostEquals(slept[i], expected, expected * 0.2));
  assert(error.message.includes(`host 127.0.0.1, port ${port}, database candles`), error.message);
  assert(!error.message.includes("secret-pw"), "password leaked");
});

Deno.test("start-up: a server that comes up after the second attempt is connected to", async () => {
  const server = await sharedServer();
  const target = new URL(server.url);
  const port = deadPort();
  let listener: Deno.TcpListener | undefined;
  const conns: Deno.Conn[] = [];
  const proxy = async (l: Deno.TcpListener) => {
    for await (const client of l) {
      const upstream = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
      conns.push(client, upstream);
      client.readable.pipeTo(upstream.writable).catch(() => {});
      upstream.readable.pipeTo(client.writable).catch(() => {});
    }
  };
  const slept: number[] = [];
  const url = new URL(server.url);
  url.port = String(port);
  const db = await openDatabase(url.toString(), {
    sleep: (ms) => {
      slept.push(ms);
      if (slept.length === 2) {
        // The "server" comes up while we wait after the second failed attempt.
        listener = Deno.listen({ hostname: "127.0.0.1", port });
        proxy(listener).catch(() => {});
      }
      return Promise.resolve();
    },
  });
  try {
    assertEquals(slept.length, 2, "connected on the third try");
    assert(db.ready);
    const [row] = await db.sql<{ one: number }[]>`select 1 as one`;
    assertEquals(row.one, 1);
  } finally {
    await db.close();
    listener?.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
  }
});
