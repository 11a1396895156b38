// The playground's page: draws what the Slack stand-in holds the way Slack would, and sends each
// command, click and form to the playground, which signs it as Slack does and hands it to
// rollbot's real handlers. No build step: plain JavaScript.
"use strict";

const $ = (selector) => document.querySelector(selector);
let state = null;
let me = localStorage.getItem("rollbot-playground-as");
let channel = null;
let thread = null;
let drawn = "";
let modalKey = "";
const firstSeen = new Map();
const dismissed = new Set();
let elements = [];

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Slack escapes &, < and > in mrkdwn; everything else arrives as typed.
function unescapeSlack(text) {
  return String(text ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

const EMOJI = { white_check_mark: "✅", x: "❌", warning: "⚠️", rotating_light: "🚨", hourglass: "⏳", red_circle: "🔴", large_green_circle: "🟢", test_tube: "🧪", lock: "🔒", information_source: "ℹ️", no_entry: "⛔", pause_button: "⏸️", arrow_forward: "▶️" };

function emoji(html) {
  return html.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] ?? whole);
}

function personName(id) {
  const person = state?.people.find((p) => p.id === id);
  return person ? person.name : id;
}

function slackDate(seconds, format, fallback) {
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return esc(fallback);
  const pad = (n) => String(n).padStart(2, "0");
  const tokens = {
    date_num: `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`,
    date: date.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" }),
    date_short: date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }),
    date_long: date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" }),
    time: `${pad(date.getHours())}:${pad(date.getMinutes())}`,
    time_secs: `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`,
  };
  for (const pretty of ["date_pretty", "date_short_pretty", "date_long_pretty"]) {
    tokens[pretty] = tokens[pretty.replace("_pretty", "")];
  }
  return esc(format.replace(/\{(\w+)\}/g, (whole, token) => tokens[token] ?? whole));
}

// One `<…>` of mrkdwn: a mention, a group, a date, a channel or a link.
function control(inner) {
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("@")) return `<span class="mention">@${esc(label ? unescapeSlack(label) : personName(target.slice(1)))}</span>`;
  if (target.startsWith("!subteam^")) return `<span class="mention">@${esc(label ? unescapeSlack(label) : target.slice(9))}</span>`;
  if (target.startsWith("!date^")) {
    const [, seconds, format] = target.split("^");
    return slackDate(seconds, unescapeSlack(format ?? "{date_num} {time}"), unescapeSlack(label));
  }
  if (["!here", "!channel", "!everyone"].includes(target)) return `<span class="mention">@${target.slice(1)}</span>`;
  if (target.startsWith("#")) return `<span class="mention">#${esc(label ? unescapeSlack(label) : target.slice(1))}</span>`;
  const url = unescapeSlack(target);
  const text = esc(label ? unescapeSlack(label) : url);
  return /^(https?:|mailto:)/i.test(url) ? `<a href="${esc(url)}" target="_blank" rel="noopener noreferrer">${text}</a>` : text;
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text, null] : [text.slice(0, at), text.slice(at + 1)];
}

// Inline mrkdwn: `code`, *bold*, _italic_, ~strike~, with `<…>` controls kept whole.
function inline(text) {
  const held = [];
  const hold = (html) => `\u0001${held.push(html) - 1}\u0002`;
  let out = text.replace(/<([^>\n]+)>/g, (_, inner) => hold(control(inner)));
  out = esc(unescapeSlack(out));
  out = out.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${code}</code>`));
  out = out.replace(/(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])/g, "<b>$1</b>");
  out = out.replace(/(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])/g, "<i>$1</i>");
  out = out.replace(/(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])/g, "<s>$1</s>");
  for (let pass = 0; pass < 2; pass++) out = out.replace(/\u0001(\d+)\u0002/g, (_, i) => held[Number(i)]);
  return emoji(out);
}

function mrkdwn(text) {
  const parts = String(text ?? "").split("```");
  return parts
    .map((part, i) => {
      if (i % 2 === 1) return `<pre>${esc(unescapeSlack(part.replace(/^\n/, "")))}</pre>`;
      const lines = part.split("\n");
      let html = "";
      let quote = [];
      const flush = () => {
        if (quote.length) html += `<blockquote>${quote.map(inline).join("<br>")}</blockquote>`;
        quote = [];
      };
      lines.forEach((line, n) => {
        if (line.startsWith("&gt;")) {
          quote.push(line.replace(/^&gt; ?/, ""));
          return;
        }
        flush();
        html += inline(line) + (n < lines.length - 1 ? "<br>" : "");
      });
      flush();
      return html;
    })
    .join("");
}

function textObject(object) {
  if (!object) return "";
  return object.type === "mrkdwn" ? mrkdwn(object.text) : emoji(esc(object.text));
}

// Remembers an interactive element so a click can send it back as posted.
function remember(where, block, element) {
  elements.push({ where, block_id: block.block_id ?? null, element });
  return elements.length - 1;
}

function button(where, block, element) {
  const style = element.style ? ` ${element.style}` : "";
  const index = remember(where, block, element);
  return `<button class="btn${style}" data-element="${index}" data-action-id="${esc(element.action_id)}">${esc(element.text?.text)}</button>`;
}

function option(o, chosen) {
  return `<option value="${esc(o.value)}"${chosen ? " selected" : ""}>${esc(o.text?.text)}</option>`;
}

function select(where, block, element, inForm) {
  const index = remember(where, block, element);
  const initial = element.initial_option?.value;
  const blank = initial ? "" : `<option value="">${esc(element.placeholder?.text ?? "Choose")}</option>`;
  const options = (element.options ?? []).map((o) => option(o, o.value === initial)).join("");
  return `<select data-element="${index}" data-kind="static_select" data-action-id="${esc(element.action_id)}"${inForm ? "" : " data-dispatch"}>${blank}${options}</select>`;
}

// A group of checkboxes in a message (a post-incident checklist): each tick is sent at once, as
// Slack sends it, with every box of the group that is ticked now.
function messageCheckboxes(where, block, element) {
  const index = remember(where, block, element);
  const ticked = new Set((element.initial_options ?? []).map((o) => o.value));
  const boxes = (element.options ?? [])
    .map((o) => `<label class="check"><input type="checkbox" data-kind="message_checkboxes" value="${esc(o.value)}"${ticked.has(o.value) ? " checked" : ""}> ${textObject(o.text)}</label>${o.description ? `<div class="hint">${textObject(o.description)}</div>` : ""}`)
    .join("");
  return `<div class="checks" data-element="${index}" data-action-id="${esc(element.action_id)}">${boxes}</div>`;
}

function inputElement(where, block, element, inputId) {
  const action = esc(element.action_id);
  switch (element.type) {
    case "plain_text_input": {
      const value = esc(element.initial_value ?? "");
      const placeholder = esc(element.placeholder?.text ?? "");
      return element.multiline
        ? `<textarea id="${inputId}" data-kind="plain_text_input" data-action-id="${action}" placeholder="${placeholder}" rows="3">${value}</textarea>`
        : `<input type="text" id="${inputId}" data-kind="plain_text_input" data-action-id="${action}" placeholder="${placeholder}" value="${value}">`;
    }
    case "static_select": {
      const html = select(where, block, element, !block.dispatch_action);
      return html.replace("<select ", `<select id="${inputId}" `);
    }
    case "checkboxes": {
      const ticked = new Set((element.initial_options ?? []).map((o) => o.value));
      return (element.options ?? [])
        .map((o, i) => `<label class="check"><input type="checkbox" data-kind="checkboxes" data-action-id="${action}" value="${esc(o.value)}" id="${inputId}-${i}"${ticked.has(o.value) ? " checked" : ""}> ${textObject(o.text)}</label>${o.description ? `<div class="hint">${textObject(o.description)}</div>` : ""}`)
        .join("");
    }
    default:
      return `<div class="quiet small">(${esc(element.type)} is not drawn by the playground)</div>`;
  }
}

// Block Kit, as far as rollbot uses it: messages and modals.
function blocks(list, where, errors = {}) {
  return (list ?? [])
    .map((block) => {
      switch (block.type) {
        case "header":
          return `<div class="b-header">${textObject(block.text)}</div>`;
        case "section": {
          const fields = block.fields ? `<div class="fields">${block.fields.map((f) => `<div>${textObject(f)}</div>`).join("")}</div>` : "";
          const accessory = block.accessory?.type === "button" ? button(where, block, block.accessory) : "";
          return `<div class="b-section"><div class="text">${textObject(block.text)}${fields}</div>${accessory}</div>`;
        }
        case "context":
          return `<div class="b-context">${(block.elements ?? []).map((e) => (e.type === "image" ? `<span title="${esc(e.alt_text)}">🖼</span>` : `<span>${textObject(e)}</span>`)).join("")}</div>`;
        case "divider":
          return `<hr class="b-divider">`;
        case "actions":
          return `<div class="b-actions">${(block.elements ?? [])
            .map((e) => (e.type === "button" ? button(where, block, e) : e.type === "static_select" ? select(where, block, e, false) : e.type === "checkboxes" ? messageCheckboxes(where, block, e) : ""))
            .join("")}</div>`;
        case "input": {
          const id = `input-${esc(block.block_id)}`;
          const error = errors[block.block_id];
          return `<div class="b-input${error ? " invalid" : ""}" data-block-id="${esc(block.block_id)}"${block.dispatch_action ? " data-dispatch" : ""}>
            <label for="${id}">${textObject(block.label)}${block.optional ? ' <span class="quiet">(optional)</span>' : ""}</label>
            ${inputElement(where, block, block.element, id)}
            ${error ? `<div class="error">${esc(error)}</div>` : ""}
            ${block.hint ? `<div class="hint">${textObject(block.hint)}</div>` : ""}</div>`;
        }
        case "image":
          return `<div class="quiet">🖼 ${esc(block.alt_text)}</div>`;
        default:
          return block.text ? `<div>${textObject(block.text)}</div>` : "";
      }
    })
    .join("");
}

function clock(ts) {
  if (!firstSeen.has(ts)) firstSeen.set(ts, new Date());
  return firstSeen.get(ts).toLocaleTimeString();
}

function message(m, where, options = {}) {
  const body = m.blocks?.length ? blocks(m.blocks, where) : mrkdwn(m.text);
  const replies = options.replies && m.replies.length
    ? `<button class="replies" data-thread="${esc(m.ts)}">${m.replies.length} ${m.replies.length === 1 ? "reply" : "replies"}</button>`
    : "";
  return `<div class="message" data-ts="${esc(m.ts)}"><div class="avatar">R</div><div class="body">
    <div class="meta"><b>rollbot</b><span class="app-tag">APP</span>${clock(m.ts)}${m.edited ? ' <span class="edited">(edited)</span>' : ""}</div>
    ${body}${replies}</div></div>`;
}

function ephemeral(e, index) {
  const body = e.blocks?.length ? blocks(e.blocks, { channel: e.channel, ts: "" }) : mrkdwn(e.text);
  return `<div class="message ephemeral" data-ephemeral="${index}"><div class="avatar">R</div><div class="body">
    <div class="meta"><b>rollbot</b><span class="app-tag">APP</span><span class="only-you">Only visible to you</span>
    <button class="link" data-dismiss="${index}">Dismiss</button></div>${body}</div></div>`;
}

function draw() {
  const screen = state.screen;
  const mode = $("#mode");
  mode.className = `mode ${state.mode}`;
  mode.textContent = state.mode === "execute"
    ? "Executing: steps run on this machine"
    : "Rehearsal: every request runs as a drill, no step is executed (start with --execute to run them)";
  $("#team").textContent = `Workspace ${state.team}`;
  $("#config").textContent = `Configuration: ${state.config}`;
  const who = $("#who");
  if (who.options.length !== state.people.length) {
    who.innerHTML = state.people
      .map((p) => `<option value="${esc(p.id)}">${esc(p.name)} · ${esc(p.roles.length ? p.roles.join(", ") : "no role")}</option>`)
      .join("");
  }
  if (!state.people.some((p) => p.id === me)) me = state.people[0]?.id;
  who.value = me;
  const names = Object.keys(screen.channels);
  if (!channel || !names.includes(channel)) channel = state.incident_channels[0] ?? names[0];
  const view = JSON.stringify([channel, thread, screen.channels, screen.ephemerals, [...dismissed], state.status_page]);
  if (view !== drawn) {
    drawn = view;
    elements = [];
    $("#channels").innerHTML = names
      .map((c) => `<li data-channel="${esc(c)}" class="${c === channel ? "current" : ""}"># ${esc(c)}${state.incident_channels.includes(c) ? "" : ' <span class="quiet small">notify</span>'}</li>`)
      .join("");
    $("#channel-title").textContent = `# ${channel}`;
    const messages = screen.channels[channel] ?? [];
    const mine = screen.ephemerals.map((e, i) => [e, i]).filter(([e, i]) => e.channel === channel && !dismissed.has(i));
    let html = "";
    messages.forEach((m, n) => {
      for (const [e, i] of mine.filter(([e]) => e.after === n)) html += ephemeral(e, i);
      html += message(m, { channel, ts: m.ts }, { replies: true });
    });
    for (const [e, i] of mine.filter(([e]) => e.after >= messages.length)) html += ephemeral(e, i);
    const list = $("#messages");
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
    list.innerHTML = html || '<div class="quiet message">Nothing here yet. Type a request below.</div>';
    if (atBottom) list.scrollTop = list.scrollHeight;
    drawThread(messages);
    $("#statuspage").innerHTML = state.status_page.length
      ? state.status_page.map((u) => `<li><b>${esc(u.status)}</b> ${esc(u.name)}<br>${esc(u.body)}</li>`).join("")
      : '<li class="quiet">No updates yet</li>';
  }
  drawModal(screen.modal);
}

function drawThread(messages) {
  if (!thread) return;
  const parent = messages.find((m) => m.ts === thread);
  if (!parent) return;
  openPane("Thread", [message(parent, { channel, ts: parent.ts }), ...parent.replies.map((r) => message(r, { channel, ts: r.ts }))].join(""));
}

function openPane(title, html) {
  $("#pane").hidden = false;
  $("#pane-title").textContent = title;
  $("#pane-body").innerHTML = html;
}

function drawModal(modal) {
  const key = modal ? JSON.stringify([modal.view.id, modal.view.hash, modal.errors]) : "";
  if (key === modalKey) return;
  modalKey = key;
  const backdrop = $("#modal-backdrop");
  if (!modal) {
    backdrop.hidden = true;
    return;
  }
  const view = modal.view;
  const where = { view: view.id };
  $("#modal").innerHTML = `<div class="m-title">${esc(view.title?.text)}</div>
    <form id="modal-form" data-view="${esc(view.id)}"><div class="m-body">${blocks(view.blocks, where, modal.errors)}</div>
    <div class="m-foot"><button type="button" class="btn" id="modal-close">${esc(view.close?.text ?? "Cancel")}</button>
    ${view.submit ? `<button type="submit" class="btn primary" id="modal-submit">${esc(view.submit.text)}</button>` : ""}</div></form>`;
  backdrop.hidden = false;
}

// Slack's view.state.values: every input as it stands.
function formState(form) {
  const values = {};
  for (const block of form.querySelectorAll(".b-input")) {
    const id = block.dataset.blockId;
    const field = block.querySelector("[data-kind]");
    if (!field) continue;
    const action = field.dataset.actionId;
    const kind = field.dataset.kind;
    if (kind === "plain_text_input") {
      values[id] = { [action]: { type: kind, value: field.value === "" ? null : field.value } };
    } else if (kind === "static_select") {
      const chosen = field.selectedOptions[0];
      values[id] = { [action]: { type: kind, selected_option: chosen && chosen.value ? { text: { type: "plain_text", text: chosen.textContent }, value: chosen.value } : null } };
    } else if (kind === "checkboxes") {
      const ticked = [...block.querySelectorAll("input[type=checkbox]:checked")].map((c) => ({ text: { type: "plain_text", text: c.parentElement.textContent.trim() }, value: c.value }));
      values[id] = { [action]: { type: kind, selected_options: ticked } };
    }
  }
  return values;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ as: me, ...body }) });
  if (!response.ok) $("#sent").textContent = `The playground could not send that: ${await response.text()}`;
  refresh();
  return response;
}

function confirmFirst(confirm) {
  if (!confirm) return Promise.resolve(true);
  const dialog = $("#confirm");
  $("#confirm-title").textContent = confirm.title?.text ?? "Are you sure?";
  $("#confirm-text").innerHTML = textObject(confirm.text);
  $("#confirm-ok").textContent = confirm.confirm?.text ?? "Yes";
  $("#confirm-ok").className = `btn ${confirm.style === "danger" ? "danger" : "primary"}`;
  $("#confirm-deny").textContent = confirm.deny?.text ?? "Cancel";
  dialog.showModal();
  return new Promise((resolve) => {
    $("#confirm-ok").onclick = () => { dialog.close(); resolve(true); };
    $("#confirm-deny").onclick = () => { dialog.close(); resolve(false); };
  });
}

document.addEventListener("click", async (event) => {
  const target = event.target.closest("[data-element], [data-thread], [data-dismiss], [data-channel], [data-postmortem]");
  if (!target) return;
  if (target.dataset.thread) {
    thread = target.dataset.thread;
    drawn = "";
    draw();
  } else if (target.dataset.dismiss) {
    dismissed.add(Number(target.dataset.dismiss));
    draw();
  } else if (target.dataset.channel) {
    channel = target.dataset.channel;
    thread = null;
    $("#pane").hidden = true;
    draw();
  } else if (target.dataset.postmortem) {
    showPostmortem(target.dataset.postmortem);
  } else if (target.tagName === "BUTTON") {
    const known = elements[Number(target.dataset.element)];
    if (!known || known.where.view) return;
    if (known.element.url) window.open(known.element.url, "_blank", "noopener");
    if (!(await confirmFirst(known.element.confirm))) return;
    post("/playground/click", { channel: known.where.channel, ts: known.where.ts, block_id: known.block_id, element: known.element });
  }
});

document.addEventListener("change", (event) => {
  const field = event.target;
  if (field.id === "who") {
    me = field.value;
    localStorage.setItem("rollbot-playground-as", me);
    drawn = "";
    modalKey = "";
    refresh();
    return;
  }
  if (field.dataset.kind === "message_checkboxes") {
    const group = field.closest("[data-element]");
    const known = elements[Number(group.dataset.element)];
    if (!known) return;
    const ticked = new Set([...group.querySelectorAll("input:checked")].map((box) => box.value));
    const selected_options = (known.element.options ?? []).filter((o) => ticked.has(o.value));
    const element = { type: "checkboxes", action_id: known.element.action_id, selected_options };
    post("/playground/click", { channel: known.where.channel, ts: known.where.ts, block_id: known.block_id, element });
    return;
  }
  const form = field.closest("#modal-form");
  if (form && field.dataset.kind === "static_select" && field.closest("[data-dispatch]")) {
    const chosen = field.selectedOptions[0];
    const block = field.closest(".b-input").dataset.blockId;
    const action = { type: "static_select", action_id: field.dataset.actionId, block_id: block, selected_option: { text: { type: "plain_text", text: chosen.textContent }, value: chosen.value } };
    post("/playground/form", { view_id: form.dataset.view, state: formState(form), action });
  }
});

document.addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  if (form.id === "composer-form") {
    const text = $("#composer").value;
    $("#composer").value = "";
    post("/playground/command", { channel, text }).then(async (response) => {
      if (response.ok) $("#sent").textContent = `Sent as ${personName(me)}: ${(await response.json()).sent}`;
    });
  } else if (form.id === "modal-form") {
    post("/playground/form", { view_id: form.dataset.view, state: formState(form) });
  }
});

document.addEventListener("click", (event) => {
  if (event.target.id === "modal-close") {
    const form = $("#modal-form");
    post("/playground/close", { view_id: form.dataset.view });
  } else if (event.target.id === "pane-close") {
    $("#pane").hidden = true;
    thread = null;
  } else if (event.target.id === "open-rollbacks") {
    showRollbacks();
  }
});

async function showRollbacks() {
  thread = null;
  const answer = await (await fetch("/playground/rollbacks")).json();
  const rows = (answer.rollbacks ?? [])
    .map((r) => {
      const what = `${r.request.service}${r.request.target ? ` to ${r.request.target}` : ""}`;
      const state = String(r.state?.state ?? "").replace(/_/g, " ");
      return `<div class="rollback-row"><b>RB-${esc(r.id)}</b> ${esc(what)} · ${esc(state)}${r.request.drill ? " · 🧪 drill" : ""}
        <button class="link" data-postmortem="RB-${esc(r.id)}">Post-mortem draft</button></div>`;
    })
    .join("");
  openPane("Rollbacks", rows || '<div class="quiet rollback-row">No rollbacks yet.</div>');
}

// The draft is Markdown: headings, lists, tables and paragraphs, drawn plainly.
function markdown(text) {
  let html = "";
  let table = [];
  const flushTable = () => {
    if (table.length) html += `<pre>${esc(table.join("\n"))}</pre>`;
    table = [];
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("|")) { table.push(line); continue; }
    flushTable();
    const heading = line.match(/^(#{1,4}) (.*)$/);
    const inlineMd = (s) => esc(s).replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>").replace(/`([^`]+)`/g, "<code>$1</code>");
    if (heading) html += `<h${heading[1].length + 1}>${inlineMd(heading[2])}</h${heading[1].length + 1}>`;
    else if (/^\s*[-*] /.test(line)) html += `<div>• ${inlineMd(line.replace(/^\s*[-*] /, ""))}</div>`;
    else if (line.trim() === "") html += "<br>";
    else html += `<div>${inlineMd(line)}</div>`;
  }
  flushTable();
  return html;
}

async function showPostmortem(id) {
  const response = await fetch(`/playground/postmortem/${encodeURIComponent(id)}`);
  const text = await response.text();
  openPane(`Post-mortem draft ${id}`, `<div class="doc" id="postmortem">${response.ok ? markdown(text) : esc(text)}</div>`);
}

async function refresh() {
  try {
    const response = await fetch(`/playground/state?as=${encodeURIComponent(me ?? "")}`);
    if (response.ok) {
      state = await response.json();
      draw();
    }
  } catch (error) {
    $("#sent").textContent = `The playground stopped answering: ${error}`;
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, 500);
}

poll();
