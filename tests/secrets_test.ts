/**
 * The redactor (src/secrets.ts), configuration errors that never quote a secret, log lines that
 * keep their message, and HTTP error bodies without secrets. The same against real processes:
 * tests/cli/secrets_cli_test.ts.
 */
import { assert, assertEquals, assertThrows } from "./support/assert.ts";
import { ConfigError, databaseUrlProblem, loadConfig, maskSecrets, redactConfig } from "../src/config.ts";
import { configRedactor, createRedactor, envSecrets, installRedactor, isSecretKey } from "../src/secrets.ts";
import { getLogger, setupLogging } from "../src/log.ts";
import { Database } from "../src/db/client.ts";
import { migrate } from "../src/db/migrate.ts";
import { Registry } from "../src/metrics.ts";
import { createHandler, IngestRequestError } from "../src/api/server.ts";
import { createTestDatabase } from "./support/pg.ts";
import { testConfig } from "./api/helpers.ts";

const DB_PASSWORD = "S3cr3t#pw/x";

function noSecret(text: string, secrets: string[], where: string): void {
  for (const secret of secrets) {
    for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
      assert(!text.includes(form), `${where}: ${JSON.stringify(form)} leaked in ${text}`);
    }
  }
}

Deno.test("secrets: the redactor scrubs plain, URL-encoded and JSON-escaped secrets from any text", () => {
  const r = createRedactor([DB_PASSWORD, "Tok3n-S3cr3t-0123456789", "ab"]);
  const text = `a ${DB_PASSWORD} b ${encodeURIComponent(DB_PASSWORD)} c ${JSON.stringify({ x: DB_PASSWORD })} ` +
    `d Tok3n-S3cr3t-0123456789 e ab`;
  const out = r.scrub(text);
  noSecret(out, [DB_PASSWORD, "Tok3n-S3cr3t-0123456789"], "scrub");
  assert(out.endsWith("e ab"), `a two-letter secret is not replaced in text: ${out}`);
  // Any URL password, known or not, including unencoded / and #.
  assertEquals(
    createRedactor([]).scrub("Invalid URL: 'postgres://ck:an#other/pw@db:99999/x'"),
    "Invalid URL: 'postgres://ck:***@db:99999/x'",
  );
  // Structured values: masked by key (also inside headers), strings scrubbed, errors flattened with their cause.
  const masked = r.mask({
    twofa: "2fa-value",
    login: "someone",
    headers: { Authorization: "Bearer x", Cookie: "c=1", "X-API-KEY": "k", "X-Reused": DB_PASSWORD, Accept: "json" },
    error: new Error(`cannot connect: ${DB_PASSWORD}`, { cause: new TypeError(`inner ${DB_PASSWORD}`) }),
  }) as Record<string, unknown>;
  assertEquals(masked.twofa, "***");
  assertEquals(masked.login, "***");
  assertEquals(masked.headers, {
    Authorization: "***",
    Cookie: "***",
    "X-API-KEY": "***",
    "X-Reused": "***",
    Accept: "json",
  });
  noSecret(JSON.stringify(masked), [DB_PASSWORD], "mask");
  assert(JSON.stringify(masked.error).includes('"cause":{"name":"TypeError"'), JSON.stringify(masked.error));
  for (const key of ["apiKey", "secret", "password", "uid", "privateKey", "token", "twofa", "login", "walletAddress"]) {
    assert(isSecretKey(key), key);
  }
  assert(!isSecretKey("timeout") && !isSecretKey("X-Trace") && isSecretKey("X-Auth-Token", true));
});

Deno.test("secrets: what the environment holds is known even when it does not parse", () => {
  const secrets = envSecrets({
    DATABASE_URL: `postgres://ck:${DB_PASSWORD}@[::1:5432/db`,
    CCXT_CONFIG: '{"binance":{"apiKey":"AK-S3cr3t","secret":"Sec\\u0041-S3cr3t","headers":{"X-Token":"Hdr-S3cr3t"}',
    API_TOKEN: "T0k-S3cr3t",
  });
  for (const s of [DB_PASSWORD, "AK-S3cr3t", "SecA-S3cr3t", "Hdr-S3cr3t", "T0k-S3cr3t"]) {
    assert(secrets.includes(s), `${s} not found in ${JSON.stringify(secrets)}`);
  }
  const config = loadConfig({
    DATABASE_URL: `postgres://ck:${encodeURIComponent(DB_PASSWORD)}@db:5432/x`,
    API_TOKEN: "Api-T0ken-S3cr3t-0123456789",
    CCXT_CONFIG: JSON.stringify({
      binance: {
        walletAddress: "0xWall3t",
        headers: { "X-Reused": DB_PASSWORD },
        httpsProxy: "http://pu:HttpsPr0xy-S3cr3t@proxy:8080",
        socksProxy: "socks5://S0cksUser-S3cr3t@proxy:1080",
      },
    }),
  });
  const r = configRedactor(config, {});
  const text = JSON.stringify(redactConfig(config)) + r.scrub(`${DB_PASSWORD} 0xWall3t S0cksUser-S3cr3t`);
  noSecret(
    text,
    [DB_PASSWORD, "0xWall3t", "HttpsPr0xy-S3cr3t", "S0cksUser-S3cr3t", "Api-T0ken-S3cr3t-0123456789"],
    "config",
  );
  assertEquals(maskSecrets({ binance: { token: "t", options: { x: 1 } } }), {
    binance: { token: "***", options: { x: 1 } },
  });
});

Deno.test("secrets: a configuration error names the variable and what is wrong, never the value", () => {
  const cases: [Record<string, string>, string, string][] = [
    [{ DATABASE_URL: "postgres://ck:P0rt-S3cr3t@127.0.0.1:99999/postgres" }, "P0rt-S3cr3t", "invalid port"],
    [{ DATABASE_URL: `postgres://ck:${DB_PASSWORD}@127.0.0.1:5432/postgres` }, DB_PASSWORD, "unencoded"],
    [{ DATABASE_URL: "postgres://ck:V6-S3cr3t@[::1:5432/postgres" }, "V6-S3cr3t", "IPv6"],
    [{ CCXT_CONFIG: '{"binance":{"apiKey":"AK-S3cr3t","secret":"Sec-S3cr3t"' }, "AK-S3cr3t", "not valid JSON"],
    [{ CCXT_CONFIG: '[{"login":"L0gin-S3cr3t"}]' }, "L0gin-S3cr3t", "keyed by exchange id"],
    [{ API_TOKEN: "T0k-S3cr3t" }, "T0k-S3cr3t", "at least 16 characters"],
  ];
  for (const [env, secret, what] of cases) {
    const error = assertThrows(() => loadConfig(env), ConfigError);
    const name = Object.keys(env)[0];
    assert(error.message.startsWith(`Cannot start: invalid configuration: ${name} (value not shown): `), error.message);
    assert(error.message.includes(what), error.message);
    noSecret(error.message, [secret, "S3cr3t"], name);
  }
  assertEquals(databaseUrlProblem("postgres://u:p@h1:5432,h2:5433/db"), null);
  assertEquals(databaseUrlProblem(`postgres://ck:${encodeURIComponent(DB_PASSWORD)}@[::1]:5432/db`), null);
});

Deno.test("secrets: a log property named message, level, time or category keeps the line's own fields", () => {
  const lines: string[] = [];
  setupLogging({ level: "info", format: "json", write: (l) => lines.push(l), redactor: createRedactor([DB_PASSWORD]) });
  try {
    getLogger("test").warn("Request {what} failed: {message}", {
      what: "x",
      message: `boom ${DB_PASSWORD}`,
      level: "custom",
      time: 1,
      timestamp: 2,
      category: "c",
    });
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {}, redactor: createRedactor([]) });
  }
  assertEquals(lines.length, 1);
  const line = JSON.parse(lines[0]);
  assertEquals(line.message, "Request x failed: boom ***");
  assertEquals(line.level, "warning");
  assertEquals(line.category, "candlekeep.test");
  assert(typeof line.time === "string" && line.time.endsWith("Z"), line.time);
  assertEquals(line.field_message, "boom ***");
  assertEquals([line.field_level, line.field_time, line.field_timestamp, line.field_category], ["custom", 1, 2, "c"]);
});

Deno.test("secrets: HTTP error bodies from the API handler never carry a secret", async () => {
  const t = await createTestDatabase();
  const apiToken = "Api-T0ken-S3cr3t-0123456789";
  const config = testConfig({
    databaseUrl: `postgres://ck:${encodeURIComponent(DB_PASSWORD)}@db:5432/x`,
    apiToken,
    ccxtConfig: { binance: { apiKey: "ApiK3y-S3cr3t", headers: { Authorization: "Bearer Auth-S3cr3t" } } },
  });
  installRedactor(configRedactor(config, {}));
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const handler = createHandler({
      db: new Database(t.sql, t.name),
      config,
      registry: new Registry(),
      ingest: {
        // A dependency's error that quotes secrets (as a driver or ccxt message can).
        addSeries: () => {
          throw new IngestRequestError(409, `Cannot add: ${DB_PASSWORD} ApiK3y-S3cr3t Auth-S3cr3t`);
        },
        removeSeries: () => Promise.reject(new Error(`internal ${DB_PASSWORD}`)),
      },
    });
    const auth = { authorization: `Bearer ${apiToken}`, "content-type": "application/json" };
    const requests = [
      new Request("http://x/v1/series", {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" }),
      }),
      new Request("http://x/v1/series/1", { method: "DELETE", headers: auth }),
      new Request(`http://x/v1/candles?exchange=${encodeURIComponent(DB_PASSWORD)}&symbol=BTC/USDT&timeframe=1m`),
      new Request(`http://x/v1/series/${encodeURIComponent(DB_PASSWORD)}/gaps`),
      new Request("http://x/metrics"),
      new Request("http://x/openapi.json"),
    ];
    const statuses: number[] = [];
    for (const request of requests) {
      const response = await handler(request);
      statuses.push(response.status);
      noSecret(await response.text(), [DB_PASSWORD, "ApiK3y-S3cr3t", "Auth-S3cr3t", apiToken], request.url);
    }
    assertEquals(statuses[0], 409);
    assert(statuses.slice(1, 4).every((s) => s >= 400), String(statuses));
    assertEquals(statuses.slice(4), [200, 200]);
  } finally {
    installRedactor(createRedactor([]));
    await t.drop();
  }
});
