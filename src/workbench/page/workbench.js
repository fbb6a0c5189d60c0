// The mapping workbench's page: plain JavaScript, no framework, no build step. It talks to the
// JSON endpoints under /workbench/api/ with the admin token (kept in sessionStorage, sent only
// as an Authorization header) and shows what it gets with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "svp-workbench-token";
const $ = (id) => document.getElementById(id);
const state = { markets: [], voyado: null, contactId: null, service: "", draftTimer: null };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// One call to an endpoint; a 401 asks for the token and tries once more with it.
async function api(name, body) {
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
  const response = await fetch("/workbench/api/" + name, init);
  const answer = await response.json().catch(() => ({ error: "not JSON (" + response.status + ")" }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken(token ? "That token was refused." : "");
    return api(name, body);
  }
  if (!response.ok) {
    const where = answer.field ? " (" + answer.field + ")" : "";
    throw new Error(answer.error + where);
  }
  return answer;
}

// Shows the token form and resolves once a token is given.
function askToken(why) {
  const form = $("token-form");
  form.hidden = false;
  showError(why);
  $("token").focus();
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      $("token").value = "";
      form.hidden = true;
      showError("");
      resolve();
    };
  });
}

function market() {
  return $("market").value;
}

function show(id, value) {
  $(id).textContent = value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
}

function notes(id, list) {
  const ul = $(id);
  ul.replaceChildren(...(list || []).map((n) => {
    const li = document.createElement("li");
    li.textContent = n;
    return li;
  }));
}

// The provenance table: one row a field, with the rule's file:line, what it reads, its codec
// and, for a field left empty, why.
function provenance(id, rows) {
  const table = $(id);
  const head = document.createElement("tr");
  for (const title of ["Field", "Rule", "Reads", "Codec", "Outcome", "Why"]) {
    const th = document.createElement("th");
    th.textContent = title;
    head.append(th);
  }
  const body = (rows || []).map((row) => {
    const tr = document.createElement("tr");
    tr.className = row.outcome;
    tr.dataset.field = row.field;
    const cells = [
      ["field", row.field], ["rule", row.rule], ["reads", (row.reads || []).join(", ")],
      ["codec", row.codec || ""], ["outcome", row.outcome], ["why", row.why || ""],
    ];
    for (const [name, text] of cells) {
      const td = document.createElement("td");
      td.className = name;
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  table.replaceChildren(head, ...body);
}

async function loadMarkets() {
  const answer = await api("markets");
  state.markets = answer.markets;
  $("market").replaceChildren(...answer.markets.map((m) => {
    const option = document.createElement("option");
    option.value = m.market;
    option.textContent = m.market;
    return option;
  }));
}

async function marketChosen() {
  const m = state.markets.find((x) => x.market === market());
  $("profile-name").textContent = m ? "profile: " + m.profile : "";
  const profile = await api("profile", { market: market() });
  state.service = profile.text;
  $("draft").value = profile.text;
  $("draft").dataset.file = profile.file;
}

function cardShown(answer) {
  state.voyado = answer.voyado;
  show("voyado-view", answer.voyado);
  show("customer", answer.card.document);
  notes("card-notes", answer.card.notes);
  provenance("provenance", answer.card.provenance);
}

async function fetchContact() {
  showError("");
  const id = $("contact-id").value.trim();
  state.contactId = id;
  cardShown(await api("card", { market: market(), contact_id: id }));
}

async function mapPasted() {
  showError("");
  let voyado;
  try {
    voyado = JSON.parse($("voyado").value);
  } catch (e) {
    throw new Error("the pasted text is not JSON: " + e.message);
  }
  state.contactId = null;
  cardShown(await api("card", { market: market(), voyado }));
}

// The contact being edited: the card source's contact, or a pasted bare contact.
function currentContact() {
  if (!state.voyado) return null;
  return state.voyado.contact !== undefined ? state.voyado.contact : state.voyado;
}

async function previewWrite() {
  showError("");
  const spi = JSON.parse($("spi").value);
  const current = $("as-edit").checked ? currentContact() : null;
  if ($("as-edit").checked && !current) throw new Error("fetch or paste a contact on the card tab first");
  const answer = await api("write", { market: market(), spi, current });
  show("write-request", { method: answer.method, path: answer.path, body: answer.write.document });
  notes("write-notes", answer.write.notes);
  provenance("write-provenance", answer.write.provenance);
}

async function compileDraft() {
  const body = { market: market(), profile: $("draft").value };
  if (state.voyado) body.voyado = state.voyado;
  const answer = await api("draft", body);
  const list = $("diagnostics");
  if (answer.compiles) {
    const ok = document.createElement("li");
    ok.className = "ok";
    ok.textContent = "compiles: no problems";
    list.replaceChildren(ok);
  } else {
    list.replaceChildren(...answer.diagnostics.map((d) => {
      const li = document.createElement("li");
      li.dataset.line = d.line;
      li.textContent = d.file + ":" + d.line + ":" + d.column + ": " + d.message;
      return li;
    }));
  }
  $("examples").replaceChildren(...answer.examples.map((name) => {
    const li = document.createElement("li");
    li.textContent = "passes: " + name;
    return li;
  }));
  show("draft-card", answer.draft && answer.draft.document);
  show("service-card", answer.in_service && answer.in_service.document);
  provenance("draft-provenance", answer.draft ? answer.draft.provenance : []);
}

async function mapOrder() {
  showError("");
  const order = JSON.parse($("order").value);
  const contactType = $("contact-type").value.trim() || null;
  const answer = await api("receipt", { market: market(), order, contact_type: contactType });
  show("receipt", { method: answer.method, path: answer.path, body: answer.receipt.document });
  notes("receipt-notes", answer.receipt.notes);
  provenance("receipt-provenance", answer.receipt.provenance);
}

// A link to this market and contact; the contact id is read by this script and sent to the
// API in a POST body, so it never reaches a server log line.
async function copyLink() {
  const url = new URL("/workbench/", location.href);
  url.searchParams.set("market", market());
  if (state.contactId) url.searchParams.set("contact", state.contactId);
  history.replaceState(null, "", url);
  if (navigator.clipboard) await navigator.clipboard.writeText(url.href).catch(() => {});
}

function tab(name) {
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const section of document.querySelectorAll("section.tab")) {
    section.hidden = section.id !== "tab-" + name;
  }
  if (name === "draft") guarded(compileDraft)();
}

// Runs an action, showing its failure instead of throwing it away.
function guarded(action) {
  return () => action().catch((e) => showError(e.message));
}

async function start() {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => tab(button.dataset.tab));
  }
  $("fetch").addEventListener("click", guarded(fetchContact));
  $("map").addEventListener("click", guarded(mapPasted));
  $("preview-write").addEventListener("click", guarded(previewWrite));
  $("map-order").addEventListener("click", guarded(mapOrder));
  $("link").addEventListener("click", guarded(copyLink));
  $("market").addEventListener("change", guarded(marketChosen));
  $("reset-draft").addEventListener("click", () => {
    $("draft").value = state.service;
    guarded(compileDraft)();
  });
  $("draft").addEventListener("input", () => {
    clearTimeout(state.draftTimer);
    state.draftTimer = setTimeout(guarded(compileDraft), 300);
  });
  await loadMarkets();
  const link = new URLSearchParams(location.search);
  if (link.has("market")) $("market").value = link.get("market");
  await marketChosen();
  if (link.has("contact")) {
    $("contact-id").value = link.get("contact");
    await fetchContact();
  }
  document.body.dataset.ready = "yes";
}

document.addEventListener("DOMContentLoaded", guarded(start));
