import type { Queryable } from "./store.ts";

/**
 * The lease identity of an instance. A service bound to a fixed API port is
 * `<hostname>:<port>`: one host cannot run two of those at once, and the same command
 * restarted after a crash gets the same identity, so it takes back its own leases at once
 * instead of waiting for them to expire. Anything else (a one-shot CLI run, port 0, a
 * Deploy isolate) gets `<hostname>:<pid>:<random>`.
 */
export function instanceIdentity(options: { hostname?: string; port?: number }): string {
  let host = options.hostname;
  if (host === undefined) {
    try {
      host = Deno.hostname();
    } catch {
      host = "host";
    }
  }
  if (options.port !== undefined && options.port > 0) return `${host}:${options.port}`;
  return `${host}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
}

/** Options of {@linkcode rebalance}. */
export interface LeaseOptions {
  /** How long a lease (and an instance heartbeat) lives without renewal, in ms. */
  ttlMs: number;
  /** Only consider these series ids (e.g. a CLI run narrowed by flags). */
  onlyIds?: readonly number[];
  /** Claim at most this many series (default: a fair share of the active series). */
  max?: number;
}

/** Records that instance `owner` is alive; returns how many instances are alive now. */
export async function heartbeat(
  sql: Queryable,
  owner: string,
  options: { ttlMs: number; hostname?: string; pid?: number },
): Promise<number> {
  const hostname = options.hostname ?? "unknown";
  const pid = options.pid ?? 0;
  await sql`
    insert into instances (id, hostname, pid) values (${owner}, ${hostname}, ${pid})
    on conflict (id) do update set heartbeat_at = now()`;
  const ttl = `${Math.ceil(options.ttlMs / 1000)} seconds`;
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from instances where heartbeat_at > now() - ${ttl}::interval`;
  await sql`delete from instances where heartbeat_at < now() - ${ttl}::interval * 10`;
  return row.n;
}

/**
 * Divides the active series between the live instances through leases on `series` rows:
 * renews this instance's leases, releases any beyond its fair share (an instance joined),
 * and claims free or expired ones up to that share with `FOR UPDATE SKIP LOCKED`, so two
 * instances never claim the same series. Returns the ids this instance now holds.
 */
export async function rebalance(
  sql: Queryable,
  owner: string,
  options: LeaseOptions,
): Promise<number[]> {
  const ttl = `${Math.ceil(options.ttlMs / 1000)} seconds`;
  const only = options.onlyIds ? [...options.onlyIds] : null;
  const [{ live, total }] = await sql<{ live: number; total: number }[]>`
    select
      (select greatest(count(*), 1)::int from instances where heartbeat_at > now() - ${ttl}::interval) as live,
      (select count(*)::int from series where active and state <> 'invalid'
         and (${only}::int[] is null or id = any(${only}::int[]))) as total`;
  const share = options.max ?? Math.ceil(total / live);

  // Renew what we hold, newest claims last so extras are released first.
  const held = await sql<{ id: number }[]>`
    update series set lease_expires_at = now() + ${ttl}::interval
    where lease_owner = ${owner} and active and state <> 'invalid'
    returning id`;
  let ids = held.map((r) => r.id).sort((a, b) => a - b);
  if (ids.length > share) {
    const extra = ids.slice(share);
    await sql`
      update series set lease_owner = null, lease_expires_at = null
      where lease_owner = ${owner} and id = any(${extra}::int[])`;
    ids = ids.slice(0, share);
  }
  const want = share - ids.length;
  if (want > 0) {
    const claimed = await sql<{ id: number }[]>`
      update series set lease_owner = ${owner}, lease_expires_at = now() + ${ttl}::interval
      where id in (
        select id from series
        where active and state <> 'invalid'
          and (lease_owner is null or lease_expires_at < now())
          and (${only}::int[] is null or id = any(${only}::int[]))
        order by id
        for update skip locked
        limit ${want}
      )
      returning id`;
    ids = [...ids, ...claimed.map((r) => r.id)].sort((a, b) => a - b);
  }
  // Leases of series that stopped being active are dropped as well.
  await sql`
    update series set lease_owner = null, lease_expires_at = null
    where lease_owner = ${owner} and (not active or state = 'invalid')`;
  return ids;
}

/** Whether `owner` still holds an unexpired lease on series `id`. */
export async function holdsLease(
  sql: Queryable,
  owner: string,
  id: number,
): Promise<boolean> {
  const [row] = await sql<{ held: boolean }[]>`
    select exists (
      select 1 from series where id = ${id} and lease_owner = ${owner} and lease_expires_at > now()
    ) as held`;
  return row.held;
}

/** Gives up every lease of `owner` and removes its heartbeat (clean shutdown). */
export async function releaseAll(sql: Queryable, owner: string): Promise<void> {
  await sql`update series set lease_owner = null, lease_expires_at = null where lease_owner = ${owner}`;
  await sql`delete from instances where id = ${owner}`;
}

/** A perpetual whose funding and open interest one instance collects. */
export interface DerivativeKey {
  exchange: string;
  symbol: string;
}

/**
 * The perpetuals whose funding rates and open interest `owner` collects: those whose first
 * active, valid candle series (lowest id, its *primary* series) `owner` holds a live lease on.
 * Leases are exclusive, so among instances sharing a database exactly one collects each
 * perpetual, with no lease of its own. With `claimFree` (one-shot commands, which hold no
 * service share), perpetuals whose primary series nobody holds count too when they are among
 * `among`.
 */
export async function derivativeKeys(
  sql: Queryable,
  owner: string,
  options: { claimFree?: boolean; among?: readonly DerivativeKey[] } = {},
): Promise<DerivativeKey[]> {
  const rows = await sql<{ exchange: string; symbol: string; owner: string | null; leased: boolean }[]>`
    select distinct on (exchange, symbol) exchange, symbol, lease_owner as owner,
      coalesce(lease_expires_at > now(), false) as leased
    from series
    where active and state <> 'invalid' and position(':' in symbol) > 0
    order by exchange, symbol, id`;
  const among = new Set((options.among ?? []).map((k) => `${k.exchange}\u0000${k.symbol}`));
  return rows.filter((r) =>
    (r.leased && r.owner === owner) ||
    (options.claimFree === true && !r.leased && among.has(`${r.exchange}\u0000${r.symbol}`))
  ).map((r) => ({ exchange: r.exchange, symbol: r.symbol }));
}
