/**
 * Child processes of `main.ts` for tests that need a real process (kill -9, several
 * instances, exit statuses).
 *
 * @module
 */
const ROOT = new URL("../../", import.meta.url).pathname;
/**
 * The run flags of the `cli` task in deno.json (`--quiet`, `--no-prompt`, the `-P=` permission set,
 * `--v8-flags`), so that child processes run with exactly the permissions a user's
 * `deno task start` has (a missing one fails the test).
 */
export function permissions(task = "cli"): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", `file://${ROOT}`)));
  return (config.tasks[task] as string).split(/\s+/).filter((flag) =>
    /^(--(allow-|deny-|v8-flags|no-prompt|quiet)|-P=)/.test(flag)
  );
}

/** A running `main.ts` child process with its collected output. */
export interface Child {
  process: Deno.ChildProcess;
  /** Everything written so far to stdout and stderr. */
  output: () => string;
  /** Everything written so far to stdout alone. */
  stdout: () => string;
  status: Promise<Deno.CommandStatus>;
}

/**
 * Runs `main.ts <args>` in a child process with the test permissions and `env`. With
 * `task` the permission flags are those of that deno.json task (default `cli`). With
 * `group: true` it leads a process group of its own (through `setsid`), so that
 * {@linkcode killGroup} can kill it with everything it started, as a terminal's kill would.
 */
export function spawnCandlekeep(
  args: string[],
  env: Record<string, string>,
  options: { group?: boolean; task?: string } = {},
): Child {
  const deno = [Deno.execPath(), "run", ...permissions(options.task), "main.ts", ...args];
  const [program, ...rest] = options.group ? ["setsid", ...deno] : deno;
  const command = new Deno.Command(program, {
    args: rest,
    cwd: ROOT,
    // SYMBOLS=none: a test collects only what it configures (pass SYMBOLS: "" for the defaults).
    env: { LOG_FORMAT: "json", LOG_LEVEL: "info", NO_COLOR: "1", SYMBOLS: "none", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const process = command.spawn();
  let text = "";
  let out = "";
  const drain = async (stream: ReadableStream<Uint8Array>, isStdout: boolean) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const piece = decoder.decode(chunk, { stream: true });
      text += piece;
      if (isStdout) out += piece;
    }
  };
  const drained = Promise.all([drain(process.stdout, true), drain(process.stderr, false)]);
  return { process, output: () => text, stdout: () => out, status: drained.then(() => process.status) };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Sends `signal` to the whole process group of a child spawned with `group: true`. */
export function killGroup(child: Child, signal: Deno.Signal = "SIGKILL"): void {
  const result = new Deno.Command("kill", { args: [`-${signal.replace(/^SIG/, "")}`, "--", `-${child.process.pid}`] })
    .outputSync();
  if (!result.success) {
    throw new Error(
      `Cannot kill process group ${child.process.pid}: ${new TextDecoder().decode(result.stderr).trim()}`,
    );
  }
}

/** Polls `check` every 100 ms until it holds; throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
}
