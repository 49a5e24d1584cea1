/**
 * The Deploy cron host simulator against a real `deno run` child: registration, reject-new-crons,
 * invocations that succeed and fail, and a `Deno.cron` call after the reject.
 *
 * @module
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, waitFor } from "../support/child.ts";
import { CRON_SOCK_ENV, startCronHost } from "../support/deploy_cron_host.ts";

const REASON = "no new crons once the app serves";

/** Top-level crons, then an HTTP server that reports runs and tries a late `Deno.cron`. */
const PROGRAM = `
const port = Number(Deno.args[0]);
let runs = 0;
Deno.cron("demo-live", "* * * * *", { backoffSchedule: [] }, () => {
  runs++;
  console.log("demo-live ran " + runs);
});
Deno.cron("demo-fail", "*/5 * * * *", () => {
  console.log("demo-fail ran");
  throw new Error("demo-fail throws on purpose");
});
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
  const path = new URL(request.url).pathname;
  if (path === "/runs") return Response.json({ runs });
  if (path === "/late-cron") {
    try {
      Deno.cron("demo-late", "* * * * *", () => {});
      return Response.json({ threw: false });
    } catch (error) {
      return Response.json({ threw: true, name: error.name, message: error.message });
    }
  }
  return new Response("ok");
});
`;

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url);
  assertEquals(response.status, 200, `GET ${url}`);
  return await response.json();
}

Deno.test("cron host: register, reject-new-crons, invoke, and Deno.cron after the reject", async () => {
  const host = await startCronHost();
  const dir = await Deno.makeTempDir({ prefix: "cron-host-test-" });
  let child: Deno.ChildProcess | undefined;
  let drained: Promise<unknown> = Promise.resolve();
  let stdout = "";
  let stderr = "";
  try {
    await Deno.writeTextFile(`${dir}/app.ts`, PROGRAM);
    const port = freePort();
    const base = `http://127.0.0.1:${port}`;
    child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-config", "--unstable-cron", "--allow-net", "--allow-env", "app.ts", `${port}`],
      cwd: dir,
      env: { [CRON_SOCK_ENV]: host.envValue, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const drain = async (stream: ReadableStream<Uint8Array>, append: (text: string) => void) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) append(text);
    };
    drained = Promise.all([
      drain(child.stdout, (text) => (stdout += text)),
      drain(child.stderr, (text) => (stderr += text)),
    ]);
    const liveRuns = () => stdout.split("\n").filter((line) => line.startsWith("demo-live ran "));

    // Both top-level crons arrive, one register message each, before the host answers anything.
    const crons = await host.waitForRegistrations(2, 15_000);
    assertEquals(crons.map(({ name, schedule, backoffSchedule }) => ({ name, schedule, backoffSchedule })), [
      { name: "demo-live", schedule: "* * * * *", backoffSchedule: [] },
      { name: "demo-fail", schedule: "*/5 * * * *", backoffSchedule: null },
    ]);
    const registers = host.log().filter((entry) => entry.direction === "in");
    assertEquals(registers.map((entry) => entry.raw), [
      '{"kind":"register","crons":[{"name":"demo-live","schedule":"* * * * *","backoff_schedule":[]}]}',
      '{"kind":"register","crons":[{"name":"demo-fail","schedule":"*/5 * * * *"}]}',
    ]);

    await waitFor("the app's port to answer HTTP", async () => {
      try {
        const response = await fetch(`${base}/`);
        await response.body?.cancel();
        return response.ok;
      } catch {
        return false;
      }
    }, 15_000);

    await host.rejectNewCrons(REASON, 5_000);
    const afterReject = host.log().slice(-2).map((entry) => [entry.direction, entry.raw]);
    assertEquals(afterReject, [
      ["out", JSON.stringify({ kind: "reject-new-crons", reason: REASON })],
      ["in", '{"kind":"reject-ack"}'],
    ]);
    // The runtime acks only the first reject-new-crons, so the host refuses a second one.
    let again = "";
    await host.rejectNewCrons("again", 1_000).catch((error: Error) => (again = error.message));
    assertEquals(again, `Cannot reject new crons: current value is already rejected (${JSON.stringify(REASON)})`);

    // Crons registered before the reject still run; the result follows the handler's end.
    const first = await host.invoke("demo-live", 5_000);
    assertEquals(first.success, true);
    assert(first.ms >= 0, `elapsed ${first.ms}`);
    assertEquals(await getJson(`${base}/runs`), { runs: 1 });
    await waitFor("the first run's stdout line", () => Promise.resolve(liveRuns().length >= 1), 5_000);
    assertEquals(liveRuns(), ["demo-live ran 1"]);

    const failed = await host.invoke("demo-fail", 5_000);
    assertEquals(failed.success, false);
    await waitFor(
      "the runtime's report of the handler exception",
      () => Promise.resolve(stderr.includes("Exception in cron handler demo-fail")),
      5_000,
    );
    assert(stdout.includes("demo-fail ran"), `stdout: ${stdout}`);
    assertEquals(await getJson(`${base}/runs`), { runs: 1 });

    // After reject-new-crons, Deno.cron throws synchronously (op_cron_create -> RejectedError).
    assertEquals(await getJson(`${base}/late-cron`), {
      threw: true,
      name: "Error",
      message: `Error registering cron: ${REASON}`,
    });

    // A second run: exactly one more. Any register from the late call would have been written
    // before this result (one socket task, in order), so none was sent.
    const second = await host.invoke("demo-live", 5_000);
    assertEquals(second.success, true);
    assertEquals(await getJson(`${base}/runs`), { runs: 2 });
    await waitFor("the second run's stdout line", () => Promise.resolve(liveRuns().length >= 2), 5_000);
    assertEquals(liveRuns(), ["demo-live ran 1", "demo-live ran 2"]);
    assertEquals(host.registered().length, 2);

    assertEquals(
      host.log().map((entry) => `${entry.direction} ${(entry.message as { kind: string }).kind}`),
      [
        "in register",
        "in register",
        "out reject-new-crons",
        "in reject-ack",
        "out invoke",
        "in result",
        "out invoke",
        "in result",
        "out invoke",
        "in result",
      ],
    );
  } finally {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
    }
    await drained;
    await host.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cron host: errors for an unknown cron, no runtime connected, and after close", async () => {
  const host = await startCronHost();
  try {
    assert(host.envValue === `unix:${host.socketPath}`, host.envValue);
    let message = "";
    await host.invoke("nope", 100).catch((error: Error) => (message = error.message));
    assertEquals(message, 'Cannot invoke cron "nope": current value is unregistered (0 registered)');
    await host.rejectNewCrons("x", 100).catch((error: Error) => (message = error.message));
    assertEquals(message, "Cannot reject new crons: current value is 0 connections, none open");
    await host.waitForRegistrations(1, 50).catch((error: Error) => (message = error.message));
    assertEquals(message, "Cannot wait for 1 cron registrations: current value is 0 registered after 50 ms");
  } finally {
    await host.close();
  }
  let message = "";
  await host.invoke("nope").catch((error: Error) => (message = error.message));
  assertEquals(message, 'Cannot invoke cron "nope": current value is closed');
  let gone = false;
  await Deno.lstat(host.socketPath).catch(() => (gone = true));
  assert(gone, `${host.socketPath} still exists after close()`);
});

Deno.test("cron host: split lines and several messages per chunk from a scripted runtime", async () => {
  const host = await startCronHost();
  const conn = await Deno.connect({ transport: "unix", path: host.socketPath });
  const encoder = new TextEncoder();
  let answers: Promise<unknown> | undefined;
  try {
    await conn.write(encoder.encode('{"kind":"regi'));
    await conn.write(encoder.encode(
      'ster","crons":[{"name":"x","schedule":"* * * * *"}]}\n' +
        '{"kind":"register","crons":[{"name":"y","schedule":"0 * * * *","backoff_schedule":[1,2]}]}\n{"ki',
    ));
    await conn.write(encoder.encode('nd":"register","crons":[{"name":"z","schedule":"0 0 * * *"}]}\n'));
    assertEquals(await host.waitForRegistrations(3, 5_000), [
      { name: "x", schedule: "* * * * *", backoffSchedule: null, connection: 0 },
      { name: "y", schedule: "0 * * * *", backoffSchedule: [1, 2], connection: 0 },
      { name: "z", schedule: "0 0 * * *", backoffSchedule: null, connection: 0 },
    ]);

    // Answer whatever the host sends, a byte at a time, like a slow runtime.
    answers = (async () => {
      const buffer = new Uint8Array(1024);
      let text = "";
      const replies = [];
      while (replies.length < 2) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += new TextDecoder().decode(buffer.subarray(0, n));
        for (let newline; (newline = text.indexOf("\n")) !== -1;) {
          const message = JSON.parse(text.slice(0, newline));
          text = text.slice(newline + 1);
          replies.push(message);
          const reply = message.kind === "invoke"
            ? { kind: "result", name: message.name, success: message.name === "y" }
            : { kind: "reject-ack" };
          for (const byte of encoder.encode(JSON.stringify(reply) + "\n")) await conn.write(new Uint8Array([byte]));
        }
      }
      return replies;
    })();
    assertEquals((await host.invoke("y", 5_000, "00-trace-01")).success, true);
    await host.rejectNewCrons("done", 5_000);
    assertEquals(await answers, [
      { kind: "invoke", name: "y", traceparent: "00-trace-01" },
      { kind: "reject-new-crons", reason: "done" },
    ]);
  } finally {
    conn.close();
    await answers?.catch(() => {});
    await host.close();
  }
});
