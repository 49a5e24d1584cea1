import { assert, assertEquals } from "../support/assert.ts";
import { openDatabase } from "../../src/db/client.ts";
import { startPrivateServer } from "../support/pg.ts";

Deno.test("run time: a PostgreSQL restart under a running client is survived", async () => {
  const server = await startPrivateServer();
  let restarted = false;
  const readyDuringOutage: boolean[] = [];
  const db = await openDatabase(server.url, {
    max: 2,
    // Injected sleep: instead of waiting, bring the server back during the first backoff.
    sleep: async () => {
      readyDuringOutage.push(db.ready);
      if (!restarted) {
        restarted = true;
        await server.start();
      }
    },
  });
  try {
    await db.sql`create table t (id int primary key)`;
    await db.sql`insert into t values (1)`;
    assert(db.ready);

    await server.stop();
    // The same process, the same pool: the next call fails, is retried, and succeeds.
    const rows = await db.retry("read", (sql) => sql<{ id: number }[]>`select id from t`);
    assertEquals(rows.map((r) => r.id), [1]);
    assert(restarted, "the server was restarted during the retry");
    assertEquals(readyDuringOutage[0], false, "readiness reflected the outage");
    assert(db.ready, "ready again after the restart");

    // Writes work as well after the restart.
    await db.retry("write", (sql) => sql`insert into t values (2) on conflict do nothing`);
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from t`;
    assertEquals(count.n, 2);
  } finally {
    await db.close();
    await server.cleanup();
  }
});
