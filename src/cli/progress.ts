import type { BackfillProgress } from "../ingest/backfill.ts";
import { describeSeries } from "../ingest/walk.ts";

/** Options of {@linkcode ProgressDisplay}. */
export interface ProgressOptions {
  /** Draw bars on a terminal (true) or log progress lines (false). */
  tty: boolean;
  /** Where bars are drawn (default standard error). */
  write?: (text: string) => void;
  /** Called with a progress line in log mode. */
  log?: (fields: Record<string, unknown>) => void;
  now?: () => number;
}

interface Row {
  label: string;
  done: number;
  expected: number;
  startedAt: number;
  lastLogged: number;
  /** The 100% line was logged (it is logged once). */
  finished?: boolean;
  /** Archive files handled / planned, when the backfill uses the archive. */
  files?: { done: number; total: number };
}

const encoder = new TextEncoder();

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** One bar: `label [#####.....]  52% 5,200/10,000  1,234/s ETA 4s`. */
export function renderBar(label: string, done: number, expected: number, rate: number, width = 24): string {
  const ratio = expected > 0 ? Math.min(1, done / expected) : 1;
  const filled = Math.round(ratio * width);
  const eta = rate > 0 ? (expected - done) / rate : Infinity;
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  return `${label.padEnd(28)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${
    String(Math.floor(ratio * 100)).padStart(3)
  }% ${fmt(done)}/${fmt(expected)} ${fmt(rate)}/s ETA ${ratio >= 1 ? "0s" : formatEta(eta)}`;
}

/**
 * Shows backfill progress: a bar per series redrawn in place on a terminal, or a progress
 * log line per series at most every 10 s (and at completion) otherwise.
 */
export class ProgressDisplay {
  readonly #rows = new Map<number, Row>();
  readonly #options: ProgressOptions;
  #drawn = 0;
  #lastDraw = -Infinity;

  /** Creates the display. */
  constructor(options: ProgressOptions) {
    this.#options = options;
  }

  /** Whether bars are drawn (a terminal) rather than progress lines logged. */
  get tty(): boolean {
    return this.#options.tty;
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  /** Records a progress report and redraws (throttled) or logs. */
  update(p: BackfillProgress): void {
    const now = this.#now();
    let row = this.#rows.get(p.series.id);
    if (!row) {
      row = {
        label: describeSeries(p.series),
        done: 0,
        expected: 0,
        startedAt: now,
        lastLogged: -Infinity,
      };
      this.#rows.set(p.series.id, row);
    }
    row.done = p.done;
    row.expected = p.expected;
    if (p.files) row.files = p.files;
    const rate = row.done / Math.max(0.001, (now - row.startedAt) / 1000);
    if (this.#options.tty) {
      if (now - this.#lastDraw >= 100 || row.done >= row.expected) this.draw();
    } else if (now - row.lastLogged >= 10_000 || (row.done >= row.expected && !row.finished)) {
      row.lastLogged = now;
      row.finished = row.done >= row.expected;
      this.#options.log?.({
        series: row.label,
        done: Math.round(row.done),
        expected: Math.round(row.expected),
        percent: row.expected > 0 ? Math.floor((100 * row.done) / row.expected) : 100,
        rate_per_s: Math.round(rate),
        eta_s: rate > 0 ? Math.round((row.expected - row.done) / rate) : null,
        archive: row.files ? `, archive files ${row.files.done}/${row.files.total}` : "",
        ...(row.files ? { files_done: row.files.done, files_total: row.files.total } : {}),
      });
    }
  }

  /**
   * Writes a line (a log line) above the bars: on a terminal the bars are cleared first and
   * redrawn below it, so that a redraw never overwrites it; otherwise it is written as is.
   */
  writeAbove(line: string): void {
    const write = this.#options.write ?? ((t: string) => Deno.stderr.writeSync(encoder.encode(t)));
    if (!this.#options.tty || this.#drawn === 0) {
      write(line + "\n");
      return;
    }
    write(`\r\x1b[${this.#drawn}A\x1b[J${line}\n`);
    this.#drawn = 0;
    this.draw();
  }

  /** Redraws every bar in place. */
  draw(): void {
    const now = this.#now();
    this.#lastDraw = now;
    const lines = [...this.#rows.values()].map((r) =>
      renderBar(r.label, r.done, r.expected, r.done / Math.max(0.001, (now - r.startedAt) / 1000)) +
      (r.files ? ` files ${r.files.done}/${r.files.total}` : "")
    );
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    const text = up + lines.map((l) => `\x1b[2K${l}`).join("\n") + "\n";
    this.#drawn = lines.length;
    (this.#options.write ?? ((t: string) => Deno.stderr.writeSync(encoder.encode(t))))(text);
  }
}
