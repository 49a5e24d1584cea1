/**
 * Secrets never reach the output of a real `main.ts` process (stdout, stderr, HTTP), whatever
 * the configuration: unparseable DATABASE_URL or CCXT_CONFIG, secrets under every secret-like
 * key, proxy URLs with passwords, a secret reused in another variable.
 */
import postgres from "postgres";
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, spawnCandlekeep, waitFor } from "../support/child.ts";
import { startFakeExchange } from "../support/fake_exchange.ts";
import { createTestDatabase } from "../support/pg.ts";

/** Fails when any secret appears in `text`, plain, URL-encoded or JSON-escaped. */
function assertNoSecret(text: string, secrets: string[], where: string): void {
  const leak = findLeak(text, secrets, where);
  assert(leak === null, leak ?? "");
}

/** The first secret found in `text` (plain, URL-encoded or JSON-escaped), described; null when none. */
function findLeak(text: string, secrets: string[], where: string): string | null {
  for (const secret of secrets) {
    const forms = new Set([secret, encodeURIComponent(secret), encodeURI(secret), JSON.stringify(secret).slice(1, -1)]);
    for (const form of forms) {
      const at = text.indexOf(form);
      if (at >= 0) {
        return `${where}: secret ${JSON.stringify(form)} leaked: ...${text.slice(Math.max(0, at - 200), at + 100)}`;
      }
    }
  }
  return null;
}

const COMMANDS = [["start"], ["migrate"], ["status", "--json"], ["backfill"]];

Deno.test("secrets: configuration that does not parse is never echoed, by any command", async () => {
  const cases: { name: string; env: Record<string, string>; variable: string; secrets: string[] }[] = [
    {
      name: "DATABASE_URL with port 99999",
      env: { DATABASE_URL: "postgres://ck:P0rtS3cr3t-pw@127.0.0.1:99999/postgres" },
      variable: "DATABASE_URL",
      secrets: ["P0rtS3cr3t-pw"],
    },
    {
      name: "DATABASE_URL with an unencoded # and / in the password",
      env: { DATABASE_URL: "postgres://ck:S3cr3t#pw/x@127.0.0.1:5432/postgres" },
      variable: "DATABASE_URL",
      secrets: ["S3cr3t#pw/x", "S3cr3t", "pw/x@127"],
    },
    {
      name: "DATABASE_URL with a malformed IPv6 host",
      env: { DATABASE_URL: "postgres://ck:V6S3cr3t-pw@[::1:5432/postgres" },
      variable: "DATABASE_URL",
      secrets: ["V6S3cr3t-pw"],
    },
    {
      name: "CCXT_CONFIG that is not JSON",
      env: { CCXT_CONFIG: '{"binance":{"apiKey":"AK-S3cr3t-bad","secret":"Sec-S3cr3t-bad"' },
      variable: "CCXT_CONFIG",
      secrets: ["AK-S3cr3t-bad", "Sec-S3cr3t-bad"],
    },
    {
      name: "CCXT_CONFIG that is an array",
      env: { CCXT_CONFIG: '[{"apiKey":"AK-S3cr3t-arr","secret":"Sec-S3cr3t-arr","login":"L0gin-S3cr3t-arr"}]' },
      variable: "CCXT_CONFIG",
      secrets: ["AK-S3cr3t-arr", "Sec-S3cr3t-arr", "L0gin-S3cr3t-arr"],
    },
    {
      name: "CCXT_CONFIG with a bad value next to secrets",
      env: { CCXT_CONFIG: '{"binance":{"twofa":"TwoFa-S3cr3t-x","login":"L0gin-S3cr3t"},"okx":7}' },
      variable: "CCXT_CONFIG",
      secrets: ["TwoFa-S3cr3t-x", "L0gin-S3cr3t"],
    },
    {
      name: "API_TOKEN too short",
      env: { API_TOKEN: "T0k-S3cr3t" },
      variable: "API_TOKEN",
      secrets: ["T0k-S3cr3t"],
    },
  ];
  // Every case and command is checked; the failures are listed together.
  const failures: string[] = [];
  await Promise.all(cases.flatMap((c) =>
    COMMANDS.map(async (args) => {
      const child = spawnCandlekeep(args, { DATA_DIR: "/tmp/candlekeep-secrets-test-unused", ...c.env });
      const status = await child.status;
      const where = `${c.name}, ${args.join(" ")}`;
      const output = child.output();
      const leak = findLeak(output, c.secrets, where);
      if (leak) failures.push(leak);
      else if (status.code !== 2) failures.push(`${where}: exit ${status.code}, expected 2: ${output}`);
      else if (!output.includes(c.variable)) failures.push(`${where}: the variable is not named: ${output}`);
    })
  ));
  assert(failures.length === 0, `${failures.length} failures:\n${failures.join("\n")}`);
});

Deno.test("secrets: a working configuration full of secrets; start, migrate, status --json and backfill print none", async () => {
  const fake = await startFakeExchange({ dialect: "binance" });
  const t = await createTestDatabase();
  // A role of our own whose password has characters that must be URL-encoded.
  const dbPassword = "S3cr3t#pw/x";
  const role = `ck_secret_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  await t.sql.unsafe(`create role ${role} login password '${dbPassword}'`);
  await t.sql.unsafe(`alter database "${t.name}" owner to ${role}`);
  const url = new URL(t.url);
  url.username = role;
  url.password = encodeURIComponent(dbPassword);
  const databaseUrl = url.toString();
  const secrets = {
    apiKey: "ApiK3y-S3cr3t-1",
    secret: "Secr3t-S3cr3t-2",
    password: "Passw0rd-S3cr3t-3",
    uid: "U1d-S3cr3t-4",
    privateKey: "Pr1vKey-S3cr3t-5",
    token: "T0ken-S3cr3t-6",
    twofa: "TwoFa-S3cr3t-7",
    login: "L0gin-S3cr3t-8",
    walletAddress: "Wall3t-S3cr3t-9",
    passphrase: "Passphr4se-S3cr3t",
  };
  const headerSecrets = {
    Authorization: "Bearer Auth-S3cr3t-h1",
    Cookie: "session=C00kie-S3cr3t-h2",
    "X-API-KEY": "XApiKey-S3cr3t-h3",
  };
  const apiToken = "Api-T0ken-S3cr3t-0123456789";
  const ccxtConfig = {
    [fake.exchangeId]: {
      ...fake.ccxtConfig(),
      ...secrets,
      // With keys, ccxt's binance also loads currencies and margin pairs from private endpoints.
      has: { fetchCurrencies: false },
      options: { fetchMargins: false },
      // The database password reused in a header whose name says nothing about secrets.
      headers: { ...headerSecrets, "X-Reused": dbPassword },
    },
    // Proxies on an exchange that is not used (ccxt would send the fake's requests through them).
    okx: {
      httpsProxy: "http://proxyuser:HttpsPr0xy-S3cr3t@127.0.0.1:9/",
      socksProxy: "socks5://socksuser:S0cksPr0xy-S3cr3t@127.0.0.1:9",
    },
  };
  const all = [
    dbPassword,
    ...Object.values(secrets),
    ...Object.values(headerSecrets),
    "C00kie-S3cr3t-h2",
    "Auth-S3cr3t-h1",
    "HttpsPr0xy-S3cr3t",
    "S0cksPr0xy-S3cr3t",
    apiToken,
  ];
  const port = freePort();
  const env = {
    DATABASE_URL: databaseUrl,
    EXCHANGES: fake.exchangeId,
    SYMBOLS: "BTC/USDT",
    TIMEFRAMES: "1h",
    BACKFILL_SINCE: "2d",
    CCXT_CONFIG: JSON.stringify(ccxtConfig),
    API_TOKEN: apiToken,
    API_PORT: String(port),
    LOG_LEVEL: "debug",
  };
  try {
    for (const args of [["migrate"], ["backfill"], ["status", "--json"]]) {
      const child = spawnCandlekeep(args, env);
      const status = await child.status;
      assertEquals(status.code, 0, `${args.join(" ")}: ${child.output()}`);
      assertNoSecret(child.output(), all, args.join(" "));
    }

    const service = spawnCandlekeep(["start"], env);
    try {
      await waitFor(
        "the service to serve",
        () => Promise.resolve(service.output().includes("Candlekeep is running")),
        60_000,
      );
      const base = `http://127.0.0.1:${port}`;
      const bodies: string[] = [];
      for (
        const path of ["/metrics", "/openapi.json", "/health", "/ready", "/v1/series", "/v1/candles?exchange=nope"]
      ) {
        const res = await fetch(base + path);
        bodies.push(`${path} ${res.status} ${await res.text()}`);
      }
      // A mutating route with a wrong token and one with the right token but a bad body.
      const denied = await fetch(`${base}/v1/series`, {
        method: "POST",
        headers: { authorization: "Bearer wrong-token-0123456789" },
        body: "{}",
      });
      bodies.push(`POST denied ${denied.status} ${await denied.text()}`);
      const bad = await fetch(`${base}/v1/series`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json" },
        body: JSON.stringify({ exchange: fake.exchangeId, symbol: "NOPE/USDT", timeframe: "1h" }),
      });
      bodies.push(`POST bad ${bad.status} ${await bad.text()}`);
      assertNoSecret(bodies.join("\n"), all, "HTTP");
      assert(bodies[0].startsWith("/metrics 200"), bodies[0]);
      assert(bodies[1].startsWith("/openapi.json 200"), bodies[1]);
    } finally {
      service.process.kill("SIGTERM");
      await service.status;
    }
    assertNoSecret(service.output(), all, "start");
    // The configuration is logged, masked: the line is there and keeps its message.
    const loaded = service.output().split("\n").find((l) => l.includes('"Configuration loaded"'));
    assert(loaded, service.output());
    assert(loaded.includes('"***"'), loaded);
  } finally {
    await fake.close();
    await t.drop();
    const server = new URL(t.url);
    server.pathname = "/postgres";
    const admin = postgres(server.toString(), { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop role if exists ${role}`).catch(() => {});
    await admin.end({ timeout: 5 });
  }
});

Deno.test("secrets: proxy passwords stay hidden in the errors ccxt raises", async () => {
  const fake = await startFakeExchange({ dialect: "binance" });
  const t = await createTestDatabase();
  const closed = freePort();
  const ccxtConfig = {
    [fake.exchangeId]: {
      ...fake.ccxtConfig(),
      // Two proxies at once: ccxt refuses the request and names the settings in its error.
      httpsProxy: `http://proxyuser:HttpsPr0xy-S3cr3t@127.0.0.1:${closed}/`,
      socksProxy: `socks5://socksuser:S0cksPr0xy-S3cr3t@127.0.0.1:${closed}`,
    },
  };
  try {
    const child = spawnCandlekeep(["backfill"], {
      DATABASE_URL: t.url,
      EXCHANGES: fake.exchangeId,
      SYMBOLS: "BTC/USDT",
      TIMEFRAMES: "1h",
      BACKFILL_SINCE: "1d",
      CCXT_CONFIG: JSON.stringify(ccxtConfig),
      LOG_LEVEL: "debug",
    });
    const status = await child.status;
    assert(status.code !== 0, child.output());
    assertNoSecret(child.output(), ["HttpsPr0xy-S3cr3t", "S0cksPr0xy-S3cr3t", "proxyuser", "socksuser"], "backfill");
  } finally {
    await fake.close();
    await t.drop();
  }
});
