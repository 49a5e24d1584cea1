// Adding and removing series with the API token (kept in sessionStorage only, never in the URL).
import { send } from "./api.js";

const KEY = "candlekeep.token";
const $ = (id) => document.getElementById(id);

/** The token of this tab, or "". */
export const token = () => sessionStorage.getItem(KEY) ?? "";

function say(text, kind) {
  const el = $("manage-msg");
  el.textContent = text;
  el.className = `manage-msg ${kind}`;
}

function reflectToken() {
  const has = token() !== "";
  $("add-submit").disabled = !has;
  $("token-hint").textContent = has
    ? "Token set for this tab (sessionStorage); it is sent only with add and remove."
    : "Adding and removing series needs the service's API_TOKEN: enter it here.";
}

/** Wires the token field, the add form and the remove buttons of `table`; `changed()` runs after each change. */
export function setupManage(table, changed) {
  const field = $("token");
  field.value = token();
  reflectToken();
  field.addEventListener("input", () => {
    const value = field.value.trim();
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
    reflectToken();
    changed();
  });

  $("add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!token()) return say("Cannot add a series: no API token entered above.", "error");
    const form = new FormData(e.target);
    const body = {};
    for (const k of ["exchange", "symbol", "timeframe", "since"]) {
      const v = String(form.get(k) ?? "").trim();
      if (v) body[k] = v;
    }
    $("add-submit").disabled = true;
    say("Adding…", "");
    try {
      const { status, body: res } = await send("POST", "/v1/series", { token: token(), body });
      say(
        status === 201
          ? `Added series ${res.id} (${body.symbol} ${body.timeframe} on ${body.exchange}); its backfill has started.`
          : `Series ${res.id} already exists; it is collected again if it was removed.`,
        "ok",
      );
      changed();
    } catch (err) {
      say(`Cannot add the series: ${err.message}`, "error");
    } finally {
      reflectToken();
    }
  });

  table.addEventListener("click", async (e) => {
    const button = e.target.closest("button.remove");
    if (!button) return;
    const row = button.closest("tr");
    const name = `${row.dataset.symbol} ${row.dataset.tf} on ${row.dataset.exchange} (series ${button.dataset.id})`;
    if (!confirm(`Stop updating ${name}? Its stored candles are kept.`)) return;
    button.disabled = true;
    try {
      await send("DELETE", `/v1/series/${button.dataset.id}`, { token: token() });
      say(`Removed ${name}: it is no longer updated; its candles are kept.`, "ok");
      changed();
    } catch (err) {
      say(`Cannot remove ${name}: ${err.message}`, "error");
      button.disabled = false;
    }
  });
}
