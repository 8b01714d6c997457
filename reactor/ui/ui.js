// Smart Rollback dashboard. Reads the reactor's JSON API with the user's credentials and renders it with DOM
// APIs only: decisions carry alert labels anybody can set, so no data ever goes through innerHTML.
"use strict";

(function () {
  // The Authorization header value ("Bearer ..." or "Basic ..."), and whom it signs in (shown in the header).
  const AUTH_KEY = "smart-rollback-authorization";
  const WHO_KEY = "smart-rollback-who";
  const REFRESH_MS = 5000;
  const TIMEOUT_MS = 10000; // a hung reactor shows the error banner instead of a page that silently stops
  const API = "api/v1/"; // relative to /ui, so the page also works behind a path prefix

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let generation = 0; // bumped on sign-in/out so an answer for an old token is dropped
  let started = 0; // refreshes started, and the latest one shown: an older answer never overwrites a newer one
  let shown = 0;
  const expanded = new Map(); // decision id -> full explanation (or null while loading)
  const reasonDrafts = new Map(); // decision id -> reason typed so far (survives refreshes)

  class Unauthorized extends Error {}

  // ------------------------------------------------------------------------------------------ token

  function takeTokenFromFragment() {
    // Not URLSearchParams: it would turn a "+" of a base64 token into a space.
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (!match) return;
    let token = "";
    try {
      token = decodeURIComponent(match[1]);
    } catch (e) {
      token = match[1];
    }
    if (token) remember("Bearer " + token, "a token");
    // Out of the address bar, the history and any bookmark.
    history.replaceState(null, "", location.pathname + location.search);
  }

  function remember(authorization, who) {
    sessionStorage.setItem(AUTH_KEY, authorization);
    sessionStorage.setItem(WHO_KEY, who);
  }

  function basic(user, password) {
    // btoa takes Latin-1 only: encode the UTF-8 bytes of "user:password" first (RFC 7617's charset).
    const bytes = new TextEncoder().encode(user + ":" + password);
    return "Basic " + btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
  }

  const authorization = () => sessionStorage.getItem(AUTH_KEY);

  function signOut(message) {
    generation += 1;
    sessionStorage.removeItem(AUTH_KEY);
    sessionStorage.removeItem(WHO_KEY);
    clearTimeout(timer);
    $("dashboard").hidden = true;
    $("sign-out").hidden = true;
    $("error").hidden = true;
    $("updated").textContent = "";
    $("who").textContent = "";
    // Nothing of the last token's view may show for a while under the next one.
    for (const id of ["pending", "inflight", "decisions", "deployments"]) clear(tbody(id));
    for (const id of ["kill-switch", "pending-count", "inflight-count", "approval-result"]) $(id).textContent = "";
    expanded.clear();
    reasonDrafts.clear();
    const msg = $("sign-in-message");
    msg.textContent = message || "";
    msg.className = message ? "message bad" : "message";
    $("sign-in").hidden = false;
    $("token").focus();
  }

  function signedIn() {
    generation += 1;
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("sign-out").hidden = false;
    $("who").textContent = "signed in with " + (sessionStorage.getItem(WHO_KEY) || "a token");
    refresh();
  }

  // ------------------------------------------------------------------------------------------ API

  async function api(path, options) {
    const init = Object.assign({ credentials: "omit", cache: "no-store" }, options || {});
    init.headers = Object.assign({ Accept: "application/json", Authorization: authorization() }, init.headers);
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), TIMEOUT_MS);
    init.signal = abort.signal;
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      throw new Error(abort.signal.aborted ? "no answer within " + TIMEOUT_MS / 1000 + " s" : err.message);
    } finally {
      clearTimeout(deadline);
    }
    if (response.status === 401) throw new Unauthorized();
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.error ? body.error : response.statusText;
      throw new Error(response.status + " " + detail);
    }
    return body;
  }

  function handleUnauthorized(err) {
    if (!(err instanceof Unauthorized)) return false;
    signOut("The reactor refused these credentials (401): sign in again with a valid token or user.");
    return true;
  }

  // ------------------------------------------------------------------------------------------ refresh

  async function refresh() {
    clearTimeout(timer);
    const mine = generation;
    const number = ++started;
    try {
      const [killSwitch, pending, executing, approved, recent, deployments] = await Promise.all([
        api("kill-switch"),
        api("decisions?status=pending_approval&limit=100"),
        api("decisions?status=executing&limit=100"),
        api("decisions?status=approved&limit=100"),
        api("decisions?limit=50"),
        api("deployments?limit=20"),
      ]);
      if (mine !== generation) return;
      if (number < shown) return;
      shown = number;
      renderKillSwitch(killSwitch);
      renderPending(pending.decisions);
      renderInflight(executing.decisions.concat(approved.decisions));
      renderDecisions(recent.decisions);
      renderDeployments(deployments.deployments);
      $("error").hidden = true;
      $("updated").textContent = "updated " + clock(new Date());
    } catch (err) {
      if (mine !== generation) return;
      if (handleUnauthorized(err)) return;
      if (number < shown) return;
      const banner = $("error");
      banner.textContent = "Refresh failed at " + clock(new Date()) + ": " + err.message +
        ". Showing the last data; retrying every " + REFRESH_MS / 1000 + " s.";
      banner.hidden = false;
    }
    if (mine !== generation) return;
    clearTimeout(timer); // a refresh started meanwhile (after an approval) may have set one: keep a single loop
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // ------------------------------------------------------------------------------------------ rendering

  function clock(date) {
    return date.toTimeString().slice(0, 8);
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
  }

  function tbody(id) {
    return $(id).tBodies[0];
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }

  function statusCell(status) {
    return el("td", status, "status-" + String(status).replace(/[^a-z_]/g, ""));
  }

  function emptyRow(body, columns, text) {
    const td = el("td", text, "empty");
    td.colSpan = columns;
    body.appendChild(row([td]));
  }

  function firstReason(d) {
    return d.reasons && d.reasons.length ? d.reasons[0] : "";
  }

  function renderKillSwitch(state) {
    const node = $("kill-switch");
    if (!state.enabled) {
      node.textContent = "off: the reactor rolls back on its own where the policy says auto";
      node.className = "muted";
      return;
    }
    const by = [];
    if (state.flag) {
      by.push("the flag, by " + (state.flag_actor || "someone unnamed") + " at " + when(state.flag_updated_at) +
        " (`smart-rollback kill-switch off` clears it)");
    }
    if (state.setting) by.push("the kill_switch setting (configuration file or SMART_ROLLBACK_KILL_SWITCH)");
    node.textContent = "ON: nothing is rolled back automatically, decisions are only recorded. Set by " +
      by.join(" and ") + ".";
    node.className = "kill-on";
  }

  function renderPending(items) {
    const body = tbody("pending");
    $("pending-count").textContent = "(" + items.length + ")";
    // Keep the rows already shown, so a reason being typed survives the refresh.
    const keep = new Map();
    for (const tr of Array.from(body.rows)) {
      if (tr.dataset.id) keep.set(tr.dataset.id, tr);
    }
    clear(body);
    if (!items.length) emptyRow(body, 6, "nothing is waiting for approval");
    for (const d of items) {
      body.appendChild(keep.get(d.id) || pendingRow(d));
    }
    for (const id of Array.from(reasonDrafts.keys())) {
      if (!items.some((d) => d.id === id)) reasonDrafts.delete(id);
    }
  }

  function pendingRow(d) {
    const reason = el("input");
    reason.type = "text";
    reason.placeholder = "reason (required)";
    reason.className = "reason";
    reason.setAttribute("aria-label", "reason for decision " + d.id);
    reason.value = reasonDrafts.get(d.id) || "";
    reason.addEventListener("input", () => reasonDrafts.set(d.id, reason.value));
    const approve = el("button", "Approve", "approve");
    const reject = el("button", "Reject", "reject");
    approve.type = reject.type = "button";
    approve.addEventListener("click", () => decide(d, "approve", reason, [approve, reject]));
    reject.addEventListener("click", () => decide(d, "reject", reason, [approve, reject]));
    const cell = el("td", null, "decide");
    cell.append(reason, " ", approve, " ", reject);
    const tr = row([when(d.created_at), d.target, d.action, d.strategy, firstReason(d), cell]);
    tr.dataset.id = d.id;
    return tr;
  }

  async function decide(d, verb, input, buttons) {
    const result = $("approval-result");
    const reason = input.value.trim();
    if (!reason) {
      result.textContent = "Give a reason to " + verb + " decision " + d.id + " (it goes to the audit trail).";
      result.className = "message bad";
      input.focus();
      return;
    }
    for (const b of buttons) b.disabled = true;
    try {
      const answer = await api("decisions/" + encodeURIComponent(d.id) + "/" + verb, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason: reason }),
      });
      reasonDrafts.delete(d.id);
      result.textContent = (verb === "approve" ? "Approved" : "Rejected") + " decision " + d.id + " for " +
        d.target + ": now " + answer.status + " (by " + answer.actor + ").";
      result.className = "message good";
    } catch (err) {
      if (handleUnauthorized(err)) return;
      result.textContent = "Could not " + verb + " decision " + d.id + ": " + err.message;
      result.className = "message bad";
      for (const b of buttons) b.disabled = false;
      return;
    }
    refresh();
  }

  function renderInflight(items) {
    const body = tbody("inflight");
    $("inflight-count").textContent = "(" + items.length + ")";
    clear(body);
    if (!items.length) emptyRow(body, 6, "no rollback in flight");
    for (const d of items) {
      const to = d.to_revision === null || d.to_revision === undefined ? "" : d.to_revision;
      body.appendChild(row([when(d.created_at), d.target, d.strategy, to, statusCell(d.status), firstReason(d)]));
    }
  }

  function renderDecisions(items) {
    const body = tbody("decisions");
    clear(body);
    if (!items.length) emptyRow(body, 8, "no decisions yet");
    for (const d of items) {
      const toggle = el("button", expanded.has(d.id) ? "Hide" : "Explain", "explain");
      toggle.type = "button";
      toggle.addEventListener("click", () => toggleDetails(d.id));
      const cell = el("td");
      cell.appendChild(toggle);
      const tr = row([when(d.created_at), d.target, d.action, d.strategy, d.mode, statusCell(d.status),
        firstReason(d), cell]);
      tr.dataset.id = d.id;
      body.appendChild(tr);
      if (expanded.has(d.id)) body.appendChild(detailsRow(d.id, expanded.get(d.id)));
    }
  }

  async function toggleDetails(id) {
    if (expanded.has(id)) {
      expanded.delete(id);
      redrawDetails(id);
      return;
    }
    expanded.set(id, null);
    redrawDetails(id);
    let full;
    try {
      full = await api("decisions/" + encodeURIComponent(id));
    } catch (err) {
      if (handleUnauthorized(err)) return;
      full = { error: err.message };
    }
    if (expanded.has(id)) {
      expanded.set(id, full);
      redrawDetails(id);
    }
  }

  function redrawDetails(id) {
    const body = tbody("decisions");
    const tr = Array.from(body.rows).find((r) => r.dataset.id === id);
    if (!tr) return;
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("details")) body.removeChild(next);
    tr.querySelector("button.explain").textContent = expanded.has(id) ? "Hide" : "Explain";
    if (expanded.has(id)) body.insertBefore(detailsRow(id, expanded.get(id)), tr.nextElementSibling);
  }

  function detailsRow(id, full) {
    const td = el("td");
    td.colSpan = 8;
    if (full === null) {
      td.appendChild(el("span", "loading the explanation of " + id + "…", "muted"));
    } else if (full.error) {
      td.appendChild(el("span", "could not load " + id + ": " + full.error, "message bad"));
    } else {
      td.appendChild(el("p", full.explanation));
      const reasons = el("ol");
      for (const reason of full.reasons || []) reasons.appendChild(el("li", reason));
      td.appendChild(reasons);
      td.appendChild(el("pre", JSON.stringify(full, null, 2)));
    }
    const tr = row([td]);
    tr.className = "details";
    tr.dataset.detailsOf = id;
    return tr;
  }

  function renderDeployments(items) {
    const body = tbody("deployments");
    clear(body);
    if (!items.length) emptyRow(body, 6, "no deployments registered");
    for (const d of items) {
      const verdict = d.verdict_reason ? d.verdict_reason : (d.progress && d.progress.message) || "";
      body.appendChild(row([when(d.started_at), d.target, d.revision, statusCell(d.status),
        d.progress ? d.progress.phase : "", verdict]));
    }
  }

  // ------------------------------------------------------------------------------------------ start

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromFragment();
    $("sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      remember("Bearer " + value, "a token");
      $("token").value = "";
      signedIn();
    });
    $("basic-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const user = $("user").value.trim();
      if (!user) return;
      remember(basic(user, $("password").value), "user " + user);
      $("password").value = "";
      signedIn();
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    if (authorization()) signedIn();
    else signOut("");
  });
})();
