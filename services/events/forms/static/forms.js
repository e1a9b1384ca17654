// Tongxin's logging forms (同心 · 记录与上报): plain script, no library, nothing from another host.
// Each form posts JSON to the events service's public endpoints (the same validation as every
// other door), asks for its errors in Chinese (Accept-Language), and shows each next to its
// field. The browser validates nothing itself (forms are `novalidate`): one set of rules.
//
// One filled-in form is one event: its ids are made when the form is blank and kept until it
// is cleared, so a second click, or a retry after a lost answer, is the same event (the
// server counts it once). Accepted, the form says so beside its button and is cleared.
//
// Offline (or when the server cannot be reached, or answers 5xx) the entry is kept on the
// device with those ids (outbox.js, IndexedDB, photos as Blobs) and the form is cleared: the
// list 本机记录 shows it waiting, and it is sent on its own when the network returns (the
// `online` event, a retry with back-off while the page is open, and Background Sync through
// the service worker /forms/sw.js, which also keeps the page and its choices for offline use).
"use strict";

const LANG_KEY = "tongxin-lang";
const WHO_KEY = "tongxin-forms-who";  // the login last seen here: what entries are made under
let me = localStorage.getItem(WHO_KEY);
let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
let choices = null;

// -- words ----------------------------------------------------------------------------------
function pick(text) {  // "中文|English" -> the current language's half
  const [zh, en] = String(text).split("|");
  return lang === "en" && en !== undefined ? en : zh;
}

function translate(root) {  // data-t: the text; data-ph: a placeholder; data-title: a tooltip
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = pick(el.dataset.t);
  for (const el of root.querySelectorAll("[data-ph]")) el.placeholder = pick(el.dataset.ph);
  for (const el of root.querySelectorAll("[data-title]")) {
    el.title = pick(el.dataset.title);
    el.setAttribute("aria-label", el.title);
  }
}

function applyLang() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  translate(document);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  }
  if (choices) {
    fillAll(document);
    showWho();
  }
  renderOutbox();
}

const T = {
  sent: "已提交，{when}。表单已清空，可填写下一条。|Accepted, {when}. The form is cleared for the next one.",
  duplicate: "（此前已提交过，只计一次）| (sent before: counted once)",
  failed: "未能提交，请修改标出的项目：|Not accepted; please correct what is marked:",
  network: "无法连接服务器，请稍后再试。|The server cannot be reached; try again.",
  kept: "暂时无法提交：已保存在本机，联网后自动提交（只计一次）。表单已清空。|Not sent yet: kept on this device and sent by itself when the network returns (counted once). The form is cleared.",
  waiting: "等待网络，联网后自动提交|Waiting for the network; sent by itself when it returns",
  retrying: "等待网络，稍后自动重试（已试 {n} 次）|Waiting for the network; tried {n} times, retried by itself",
  sentAt: "已提交，{when}|Accepted, {when}",
  refused: "服务器未接受：|Refused by the server:",
  made: "填写于 {when}|Filled in {when}",
  notSent: "（尚未提交）| (not sent yet)",
  photoLater: "联网后上传|Uploads when online",
  otherLogin: "由另一账号填写：该账号登录后自动提交|Made under another login: sent once it logs in here",
  discard: "删除此条|Discard",
  uploading: "正在上传…|Uploading…",
  uploaded: "已上传|Uploaded",
  remove: "删除|Remove",
  login: "重新登录|Log in again",
  you: "当前用户：{name}（{role}）|Logged in: {name} ({role})",
  otherBase: "其他服务基地…|Another base…",
  filter: "筛选…|Filter…",
  duplicateOf: "可能与{original}重复|Possible duplicate of {original}",
  original: "「{title}」（{category} · {base} · {date}提交）|“{title}” ({category} · {base} · submitted {date})",
  linking: "（关联已保存在本机，尚未提交）| (the link is kept on this device, not sent yet)",
};

const KINDS = {
  "activity": "活动|Activity", "attendance.recorded": "考勤|Attendance",
  "report.submitted": "报告|Report", "need.submitted": "需求|Need",
  "need.claimed": "认领需求|Claim", "need.resolved": "需求已解决|Resolved",
  "need.linked": "关联重复需求|Linked as a duplicate",
};

const ROLES = {
  admin: "管理员|administrator", organiser: "组织者|organiser", unit: "单位|unit",
  reader: "只读|reader", publisher: "外部系统|publisher",
};

function say(key, values = {}) {
  return pick(T[key]).replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
}

// -- ids and times --------------------------------------------------------------------------
function uuid4() {
  // crypto.randomUUID needs a secure context; an intranet address over http is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const pad = (n) => String(n).padStart(2, "0");

function offsetOf(date) {  // the browser's UTC offset at that moment: "+08:00"
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  return `${sign}${pad(Math.floor(m / 60))}:${pad(m % 60)}`;
}

function isoWithOffset(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${offsetOf(date)}`;
}

function localInput(date) {  // the value a datetime-local input takes
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function moment(value) {  // "2013-10-19T09:00" typed in local time -> ISO with its offset
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : isoWithOffset(date);
}

// -- the server -----------------------------------------------------------------------------
async function api(path, options = {}) {
  const headers = { "Accept": "application/json",
                    "Accept-Language": lang === "en" ? "en" : "zh-CN",
                    ...(options.headers || {}) };
  const response = await fetch(new URL(path, location.href), { credentials: "same-origin",
                                                                ...options, headers });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return { status: response.status, body };
}

// -- choices --------------------------------------------------------------------------------
const FILTER_FROM = 12;  // a picker with more options than this gets a filter box
const ALL_BASES = "*all-bases*";  // the option that widens a unit's base picker to every base

function pairedOnly(select) {
  // A unit's base picker offers the bases of its pairings (where it serves), and one more
  // option to widen it to every base; the programme's own people see every base.
  return choices.organization_id && select.dataset.all !== "1"
    && choices.bases.some((b) => b.paired);
}

function optionsFor(key, select) {
  if (!choices) return [];
  const byId = (list) => Object.fromEntries(list.map((x) => [x.id, x.name]));
  const codes = (list) => list.map((c) => ({ value: c.code,
                                             label: lang === "en" ? c.label_en : c.label_zh }));
  const needLabel = (n) => {
    const base = byId(choices.bases)[n.base_id] || n.base_id;
    const flag = n.original ? ` · ${duplicateText(n)}` : "";
    return `${n.title || n.need_id} · ${base} · ${n.need_id}${flag}`;
  };
  switch (key) {
    case "bases": {
      if (!select || !pairedOnly(select)) {
        return choices.bases.map((x) => ({ value: x.id, label: x.name }));
      }
      return [...choices.bases.filter((b) => b.paired).map((x) => ({ value: x.id, label: x.name })),
              { value: ALL_BASES, label: pick(T.otherBase) }];
    }
    case "pairings": {  // those at the chosen base, if one is
      const form = select && select.form;
      const base = form && form.elements.namedItem("base_id")?.value;
      return choices.pairings.filter((p) => !base || base === ALL_BASES || p.base_id === base)
        .map((x) => ({ value: x.id, label: x.name }));
    }
    case "units": case "teams": case "volunteers":
      return choices[key].map((x) => ({ value: x.id, label: x.name }));
    case "themes": case "service_types": case "indicators":
      return codes(choices[key]);
    case "activities": {
      const bases = byId(choices.bases);
      const known = new Set(choices.activities.map((a) => a.activity_id));
      // Activities logged on this device and not sent yet: a report may name one already.
      const waiting = kept.filter((e) => e.kind === "activity" && e.state !== "refused"
                                         && !known.has(e.activity_id))
        .map((e) => ({ value: e.activity_id, label: `${e.title}${pick(T.notSent)}` }));
      return [...waiting, ...choices.activities.map((a) => ({
        value: a.activity_id,
        label: `${a.title} · ${bases[a.base_id] || a.base_id} · ` +
               `${a.started_at ? localInput(new Date(a.started_at)).replace("T", " ") : ""}` }))];
    }
    case "open_needs":
      return choices.needs.filter((n) => n.state === "open")
        .map((n) => ({ value: n.need_id, label: needLabel(n) }));
    case "claimed_needs":
      return choices.needs.filter((n) => n.state === "claimed")
        .map((n) => ({ value: n.need_id, label: needLabel(n) }));
    case "duplicate_needs":  // flagged, and no link to them waiting on this device
      return choices.needs.filter((n) => n.original && !linking(n.need_id))
        .map((n) => ({ value: n.need_id, label: needLabel(n) }));
    default:
      return [];
  }
}

// -- possible duplicates: named by the original's title, category, base and date ------------
function needOf(id) {
  return (choices?.needs || []).find((n) => n.need_id === id);
}

function duplicateText(need) {
  const o = need.original;
  const base = (choices.bases.find((b) => b.id === o.base_id) || {}).name || o.base_id;
  const code = choices.service_types.find((c) => c.code === o.category);
  const category = code ? (lang === "en" ? code.label_en : code.label_zh) : o.category;
  const date = o.submitted_at ? localInput(new Date(o.submitted_at)).slice(0, 10) : "";
  return say("duplicateOf", { original: say("original", { title: o.title || o.need_id,
                                                          category, base, date }) });
}

function linking(needId) {  // a link to it made on this device and not answered yet
  return kept.some((e) => e.kind === "need.linked" && e.need_id === needId
                          && e.state === "waiting");
}

function showDuplicates() {
  // Beside a need picked to claim or resolve: the need it may repeat, and the link to make.
  for (const box of document.querySelectorAll("[data-duplicate]")) {
    const need = needOf(box.closest("form").elements.namedItem("need_id").value);
    box.hidden = !(need && need.original);
    if (box.hidden) continue;
    const waiting = linking(need.need_id);
    box.querySelector(".duplicate-text").textContent =
      duplicateText(need) + (waiting ? say("linking") : "");
    box.querySelector(".link-duplicate").hidden = waiting;
  }
  const link = document.getElementById("form-need-link");
  const need = needOf(link.elements.namedItem("need_id").value);
  link.querySelector(".original-text").textContent = need && need.original
    ? duplicateText(need) : "—";
}

function linkingUnit(need, fallback) {
  // The unit to link a need as: its claimer, else the unit of ours paired with its base.
  if (need.claimed_by) return need.claimed_by;
  const ours = new Set(choices.units.map((u) => u.id));
  const paired = choices.pairings.find((p) => p.base_id === need.base_id
                                             && ours.has(p.organization_id));
  return fallback || (paired && paired.organization_id) || "";
}

function chooseLink(needId) {
  // Opened from the dashboard's "link it" (`?link=<need_id>`): the link form, that need chosen.
  const need = needOf(needId);
  if (!need || !need.original) return;
  const link = document.getElementById("form-need-link");
  link.elements.namedItem("need_id").value = need.need_id;
  const unit = linkingUnit(need);
  if (unit) link.elements.namedItem("organization_id").value = unit;
  showDuplicates();
  if (location.hash !== "#need") location.hash = "#need";
  link.scrollIntoView({ block: "center" });
  link.querySelector("button[type=submit]").focus();
}

async function linkDuplicate(from) {
  // One action: the link form takes the need, its original and the unit linking them (its
  // claimer, else the unit about to claim it), and sends need.linked as any form sends.
  const need = needOf(from.elements.namedItem("need_id").value);
  if (!need || !need.original || linking(need.need_id)) return;
  const link = document.getElementById("form-need-link");
  const picker = link.elements.namedItem("need_id");
  if (picker.value !== need.need_id) {
    picker.value = need.need_id;
    picker.dispatchEvent(new Event("change", { bubbles: true }));  // another entry, its own ids
  }
  const unit = linkingUnit(need, from.elements.namedItem("organization_id").value);
  if (unit) link.elements.namedItem("organization_id").value = unit;
  await send(link);
}

function fill(select) {
  const keep = select.value;
  const items = optionsFor(select.dataset.choices, select);
  select.replaceChildren();
  if (select.dataset.empty !== undefined) {
    select.append(new Option(pick(select.dataset.empty), ""));
  }
  for (const item of items) select.append(new Option(item.label, item.value));
  if (keep && items.some((i) => i.value === keep)) select.value = keep;
  else if (select.dataset.choices === "units" && select.dataset.empty === undefined
           && choices.organization_id && items.some((i) => i.value === choices.organization_id)) {
    select.value = choices.organization_id;  // a unit logs for itself, first of all
  }
  if (select.hasAttribute("data-filter")) filterable(select);
}

function filterable(select) {
  // A filter box under a long picker: typing narrows its options (by any part of the name).
  let box = select.nextElementSibling;
  if (!box || !box.classList.contains("filter")) {
    box = document.createElement("input");
    box.type = "search";
    box.className = "filter";
    box.addEventListener("input", () => narrow(select, box.value));
    box.addEventListener("keydown", (event) => {  // Enter picks, it does not send the form
      if (event.key === "Enter") { event.preventDefault(); select.focus(); }
    });
    select.after(box);
  }
  box.placeholder = pick(T.filter);
  box.setAttribute("aria-label", `${pick(T.filter)} ${labelOf(select.closest(".field"))}`);
  box.hidden = select.options.length <= FILTER_FROM;
  narrow(select, box.hidden ? "" : box.value);
}

function narrow(select, text) {
  const words = text.trim().toLowerCase().split(/\s+/).filter(Boolean);
  let first = null;
  for (const option of select.options) {
    const label = option.text.toLowerCase();
    const shown = !option.value || option.value === ALL_BASES
      || words.every((w) => label.includes(w) || option.value.toLowerCase() === w);
    option.hidden = !shown;
    if (shown && option.value && option.value !== ALL_BASES && !first) first = option;
  }
  const chosen = select.selectedOptions[0];
  if (words.length && first && (!chosen || chosen.hidden || !chosen.value)) {
    select.value = first.value;
    select.dispatchEvent(new Event("change", { bubbles: true }));
  }
}

function linkBaseAndPairing(form) {
  // The base picked narrows the pairings offered; a pairing picked sets its base; "another
  // base…" widens a unit's base picker to every base.
  const base = form.elements.namedItem("base_id");
  const pairing = form.elements.namedItem("pairing_id");
  if (!base || !pairing) return;
  base.addEventListener("change", () => {
    if (base.value === ALL_BASES) {
      base.dataset.all = "1";
      fill(base);
      base.value = "";
      const box = base.nextElementSibling;
      if (box && box.classList.contains("filter") && !box.hidden) box.focus();
    }
    fill(pairing);
  });
  pairing.addEventListener("change", () => {
    const chosen = (choices?.pairings || []).find((p) => p.id === pairing.value);
    if (!chosen || base.value === chosen.base_id) return;
    if (![...base.options].some((o) => o.value === chosen.base_id)) {
      base.dataset.all = "1";
      fill(base);
    }
    base.value = chosen.base_id;
    fill(pairing);
  });
}

function fillChecks(box) {
  const kept = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.replaceChildren();
  for (const item of optionsFor(box.dataset.checks)) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = item.value;
    input.checked = kept.has(item.value);
    label.append(input, " ", item.label);
    box.append(label);
  }
}

function fillAll(root) {
  for (const s of root.querySelectorAll("select[data-choices]")) fill(s);
  for (const b of root.querySelectorAll("[data-checks]")) fillChecks(b);
  showDuplicates();
}

function showWho() {
  const me = (choices.units.find((u) => u.id === choices.organization_id) || {}).name;
  document.getElementById("who").textContent =
    say("you", { name: me || choices.organization_id || "—",
                 role: ROLES[choices.role] ? pick(ROLES[choices.role]) : choices.role });
}

async function loadChoices() {
  const { status, body } = await api("../v1/forms/choices");
  const loading = document.getElementById("loading");
  if (status !== 200 || !body) {
    loading.textContent = messagesOf(body).join("；") || say("network");
    loading.classList.add("bad");
    return;
  }
  choices = body;
  loading.hidden = true;
  showWho();
  fillAll(document);
}

// -- repeated rows (stalls, donations, outputs) ---------------------------------------------
function addRow(list) {
  const template = document.getElementById(`row-${list.dataset.rows}`);
  const row = template.content.firstElementChild.cloneNode(true);
  list.append(row);
  translate(row);
  fillAll(row);
  renumber(list);
  return row;
}

function renumber(list) {  // each row's fields are `stalls[2].served`: the API's own paths
  [...list.children].forEach((row, i) => {
    row.dataset.path = `${list.dataset.rows}[${i}]`;
    for (const f of row.querySelectorAll("[data-sub]")) {
      f.dataset.path = `${list.dataset.rows}[${i}].${f.dataset.sub}`;
    }
  });
}

function rowsOf(form, name) {
  const list = form.querySelector(`[data-rows="${name}"]`);
  return [...list.children].map((row) => {
    const out = {};
    for (const el of row.querySelectorAll("[data-name]")) {
      const v = valueOf(el);
      if (v !== undefined) out[el.dataset.name] = v;
    }
    return out;
  });
}

// -- reading a form -------------------------------------------------------------------------
function valueOf(el) {
  // Left empty is left out: the server then says what is required, in one place.
  if (el.value === "" || el.value === undefined) return undefined;
  if (el.type === "number") {
    const n = Number(el.value);
    return Number.isNaN(n) ? el.value : n;
  }
  if (el.type === "datetime-local") return moment(el.value);
  return el.value;
}

function fields(form, names) {
  const out = {};
  for (const name of names) {
    const el = form.elements.namedItem(name);
    const v = el ? valueOf(el) : undefined;
    if (v !== undefined) out[name] = v;
  }
  return out;
}

function isFair(form) {
  return form.elements.namedItem("fair").checked;
}

function stallsServed(form) {
  return rowsOf(form, "stalls").reduce((sum, s) => sum + (Number(s.served) || 0), 0);
}

function activityData(form) {
  const data = { activity_id: form.dataset.activityId,
                 ...fields(form, ["organization_id", "base_id", "pairing_id", "team_id", "title",
                                  "theme", "started_at", "ended_at", "volunteers",
                                  "volunteer_hours", "served", "trainees", "summary"]) };
  if (isFair(form)) {
    data.stalls = rowsOf(form, "stalls");  // service types are the stalls'; served is their sum
  } else {
    data.service_types = [...form.querySelectorAll("[data-checks] input:checked")]
      .map((i) => i.value);
  }
  const donations = rowsOf(form, "donations");
  if (donations.length) data.donations = donations;
  const outputs = rowsOf(form, "outputs");
  if (outputs.length) data.outputs = outputs;
  return data;
}

const READERS = {
  "attendance.recorded": (f) => fields(f, ["activity_id", "volunteer_id", "hours", "method"]),
  "report.submitted": (f) => ({
    ...fields(f, ["activity_id", "organization_id", "summary"]),
    photos: [...f.querySelectorAll("[data-thumbs] li[data-ref]")].map((li) => li.dataset.ref),
  }),
  "need.submitted": (f) => fields(f, ["need_id", "base_id", "pairing_id", "title", "category",
                                      "urgency", "channel", "description"]),
  "need.claimed": (f) => fields(f, ["need_id", "organization_id"]),
  "need.resolved": (f) => fields(f, ["need_id", "organization_id", "activity_id", "note"]),
  "need.linked": (f) => {  // the original: the one the chosen need is flagged to repeat
    const data = fields(f, ["need_id", "organization_id"]);
    const need = needOf(data.need_id);
    if (need && need.possible_duplicate_of) data.original_id = need.possible_duplicate_of;
    return data;
  },
};

// -- showing the answer ---------------------------------------------------------------------
function messagesOf(body) {
  return ((body && body.errors) || []).map((e) => e.message);
}

function clearErrors(form) {
  for (const p of form.querySelectorAll(".field-error")) p.remove();
  for (const f of form.querySelectorAll(".invalid")) f.classList.remove("invalid");
  const outcome = form.querySelector(".outcome");
  outcome.replaceChildren();
  outcome.className = "outcome";
}

function pathOf(field) {
  // "data.stalls[2].served" (the API's) or "data.stalls.2.served": both -> "stalls[2].served"
  return String(field || "").replace(/^data(\.|$)/, "").replace(/\.(\d+)(?=\.|\[|$)/g, "[$1]");
}

function placeOf(form, path) {  // the field's box, else the nearest enclosing one
  while (path) {
    const found = form.querySelector(`[data-path="${CSS.escape(path)}"]`);
    if (found) return found;
    const shorter = path.match(/^(.*)(\[\d+\]|\.[^.[]+)$/);
    if (!shorter) return null;
    path = shorter[1];
  }
  return null;
}

function labelOf(place) {
  const label = place && place.querySelector(":scope > label, :scope > legend");
  return label ? label.textContent : "";
}

function showErrors(form, status, body) {
  const outcome = form.querySelector(".outcome");
  outcome.className = "outcome bad";
  const head = document.createElement("p");
  head.textContent = say("failed");
  const list = document.createElement("ul");
  const errors = (body && body.errors) || [{ field: "", message: `HTTP ${status}` }];
  for (const e of errors) {
    const place = placeOf(form, pathOf(e.field));
    if (place) {
      place.classList.add("invalid");
      const p = document.createElement("p");
      p.className = "field-error";
      p.dataset.field = e.field;
      p.textContent = e.message;
      place.append(p);
    }
    const li = document.createElement("li");
    const label = labelOf(place);
    li.textContent = label ? `${label}：${e.message}` : e.message;
    list.append(li);
  }
  outcome.append(head, list);
  if (status === 401) {
    const a = document.createElement("a");
    // The page itself: without a session the service sends the browser to the registry's
    // login (on its own port) and back here.
    a.href = location.href;
    a.textContent = pick(T.login);
    outcome.append(a);
  }
  (form.querySelector(".invalid") || outcome).scrollIntoView({ block: "center" });
}

function showAccepted(form, body) {
  const outcome = form.querySelector(".outcome");
  outcome.className = "outcome ok";
  outcome.dataset.eventId = body.event_id;
  outcome.dataset.seq = body.seq ?? "";
  const p = document.createElement("p");
  p.textContent = say("sent", { when: new Date().toLocaleTimeString(lang === "en" ? "en-GB" : "zh-CN", { hour: "2-digit", minute: "2-digit" }) }) +
    (body.duplicate ? say("duplicate") : "");
  outcome.append(p);
  outcome.scrollIntoView({ block: "nearest" });  // beside the button just pressed
}

// -- sending --------------------------------------------------------------------------------
function fresh(form) {  // ids of the next offer: a retry of the same one keeps them
  form.dataset.eventId = uuid4();
  if (form.dataset.kind === "activity") form.dataset.activityId = uuid4();
}

function clear(form) {
  // Blank again, for the next one: its own ids, its defaults. Until something is typed, the
  // form is the one just accepted (`data-sent`): pressing its button again sends nothing.
  form.reset();
  for (const list of form.querySelectorAll("[data-rows]")) list.replaceChildren();
  for (const thumbs of form.querySelectorAll("[data-thumbs]")) thumbs.replaceChildren();
  for (const s of form.querySelectorAll("select[data-choices]")) s.value = "";
  if (choices) fillAll(form);
  if (form.dataset.kind === "activity") defaultTimes(form);
  if (form.dataset.kind === "need.submitted") wireNeed(form);  // the next need, its own number
  form.dispatchEvent(new Event("cleared"));
  fresh(form);
  form.dataset.sent = "yes";
}

async function send(form) {
  // One offer at a time per form; a form just accepted and not touched since is not sent again.
  if (form.dataset.busy || form.dataset.sent) return;
  form.dataset.busy = "yes";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await offer(form);
  } finally {
    delete form.dataset.busy;
    button.disabled = false;
  }
}

function titleOf(kind, data) {
  const text = data.title || data.summary || data.note || data.need_id
    || (data.hours !== undefined ? `${data.hours} h` : "");
  return String(text || "—").slice(0, 40);
}

function entryOf(form) {
  // What the outbox keeps of a filled-in form: the request as it will be sent, its ids, and
  // (a report) its photos, by ref if uploaded already, else as the file itself.
  const kind = form.dataset.kind;
  const id = form.dataset.eventId;
  const entry = { id, kind, who: me, created: Date.now(), state: "waiting", tries: 0, next_at: 0,
                  lang: lang === "en" ? "en" : "zh-CN",
                  photos_url: new URL("../v1/photos", location.href).href };
  let data;
  if (kind === "activity") {
    data = activityData(form);
    entry.url = new URL("../v1/activities", location.href).href;
    entry.body = JSON.stringify(data);
    entry.headers = { "Idempotency-Key": id, "X-Tongxin-Source": "tongxin-forms" };
    entry.activity_id = data.activity_id;
  } else {
    data = READERS[kind](form);
    entry.url = new URL("../v1/events", location.href).href;
    entry.body = JSON.stringify({ event_id: id, type: kind, version: 1,
                                  occurred_at: isoWithOffset(new Date()),
                                  source: "tongxin-forms", data });
    if (kind === "report.submitted") {
      entry.photos = [...form.querySelectorAll("[data-thumbs] li:not(.invalid)")].map((li) => (
        { ref: li.dataset.ref || null, blob: li.dataset.ref ? null : li.file,
          name: li.file ? li.file.name : "photo" }));
    }
  }
  entry.title = titleOf(kind, data);
  if (kind === "need.linked") {  // while it waits, the need is not offered to link again
    entry.need_id = data.need_id;
    entry.title = titleOf(kind, needOf(data.need_id) || data);
  }
  return entry;
}

async function offer(form) {
  clearErrors(form);
  if (form.dataset.kind === "report.submitted") await Promise.all(uploads);
  const entry = entryOf(form);
  if (navigator.onLine === false) {
    await keep(form, entry);
    return;
  }
  const { outcome, status, body } = await Outbox.deliver(entry);
  if (outcome === "sent") {
    clear(form);
    // The new activity or need is one to choose now (a resolved need no longer is): the
    // choices are current by the time the page says it is done.
    await loadChoices().catch(() => undefined);
    showAccepted(form, body);
  } else if (outcome === "refused" || status === 401) {
    showErrors(form, status, body);  // the same ids stay: correct it and send it again
  } else {
    // No answer, or the server is down: perhaps accepted, perhaps not. Kept with the same
    // ids and sent again by itself, it counts once either way.
    await keep(form, entry, status);
  }
}

async function keep(form, entry, status) {
  if (status !== undefined) Object.assign(entry, { tries: 1, last_status: status,
                                                   next_at: Date.now() + 5000 });
  try {
    await Outbox.add(entry);
  } catch {  // no storage on this device (a private window): say so, keep the form
    showErrors(form, 0, { errors: [{ field: "", message: say("network") }] });
    return;
  }
  clear(form);
  const outcome = form.querySelector(".outcome");
  outcome.className = "outcome kept";
  outcome.dataset.eventId = entry.id;
  const p = document.createElement("p");
  p.textContent = say("kept");
  outcome.append(p);
  outcome.scrollIntoView({ block: "nearest" });
  await renderOutbox();
  requestSync();
}

// -- the outbox: what this device keeps, waiting, sent or refused ---------------------------
let kept = [];

function when(ms) {
  return new Date(ms).toLocaleString(lang === "en" ? "en-GB" : "zh-CN", {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function entryItem(e) {
  const li = document.createElement("li");
  li.className = `entry ${e.state}`;
  li.dataset.id = e.id;
  li.dataset.kind = e.kind;
  li.dataset.state = e.state;
  if (e.other) li.dataset.other = e.other;  // left for the login that made it
  const head = document.createElement("p");
  head.className = "what";
  const strong = document.createElement("strong");
  strong.textContent = pick(KINDS[e.kind] || e.kind);
  const photos = (e.photos || []).length ? ` · 📷 ${e.photos.length}` : "";
  head.append(strong, ` ${e.title}${photos} · ${say("made", { when: when(e.created) })}`);
  const status = document.createElement("p");
  status.className = "status";
  li.append(head, status);
  if (e.state === "waiting") {
    status.textContent = e.who && me && e.who !== me ? say("otherLogin")
      : e.tries ? say("retrying", { n: e.tries }) : say("waiting");
    if (e.last_status === 401) {
      const a = document.createElement("a");
      a.href = location.href;
      a.textContent = pick(T.login);
      status.append(" ", a);
    }
  } else if (e.state === "sent") {
    li.dataset.eventId = e.answer.event_id || e.id;
    li.dataset.seq = e.answer.seq ?? "";
    status.textContent = say("sentAt", { when: when(e.sent_at) })
      + (e.answer.duplicate ? say("duplicate") : "");
  } else {
    li.dataset.status = e.status;
    status.textContent = say("refused");
    const list = document.createElement("ul");
    for (const error of e.errors || []) {
      const item = document.createElement("li");
      item.className = "refusal";
      item.dataset.field = error.field || "";
      // Named as its form names it (服务群众（人次）), else by its path.
      const form = document.querySelector(`form[data-kind="${CSS.escape(e.kind)}"]`);
      const path = pathOf(error.field);
      const field = (form && path && labelOf(placeOf(form, path))) || path;
      item.textContent = field ? `${field}：${error.message}` : error.message;
      list.append(item);
    }
    li.append(list);
  }
  if (e.state !== "waiting") {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "discard";
    remove.textContent = pick(T.discard);
    remove.addEventListener("click", () => Outbox.remove(e.id).then(renderOutbox));
    li.append(remove);
  }
  return li;
}

async function renderOutbox() {
  try { kept = await Outbox.all(); } catch { kept = []; }
  const section = document.getElementById("outbox");
  section.querySelector(".outbox-list").replaceChildren(...[...kept].reverse().map(entryItem));
  section.hidden = !kept.length;
  section.dataset.waiting = String(kept.filter((e) => e.state === "waiting").length);
  if (choices) {
    for (const s of document.querySelectorAll('select[data-choices="activities"]')) fill(s);
    for (const s of document.querySelectorAll('select[data-choices="duplicate_needs"]')) fill(s);
    showDuplicates();
  }
}

async function flushOutbox(force = false) {
  // Sends what is waiting and due (all of it when the network has just returned).
  if (navigator.onLine === false) return;
  let result;
  try { result = await Outbox.flush(force); } catch { return; }
  if (result && result.changed) {
    await renderOutbox();
    await loadChoices().catch(() => undefined);  // what was sent is one to choose now
  }
}

function requestSync() {
  // Background Sync where the browser has it: the worker sends even with the page closed.
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.ready
    .then((registration) => registration.sync && registration.sync.register(Outbox.SYNC_TAG))
    .catch(() => undefined);
}

function showNetwork() {
  document.getElementById("network").hidden = navigator.onLine !== false;
}

// -- photos: each uploaded as it is chosen, its ref kept for the report ---------------------
const uploads = [];

function upload(form, file) {
  const li = document.createElement("li");
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);  // a blob: URL, made in the page
  img.alt = file.name;
  const status = document.createElement("span");
  status.textContent = say("uploading");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = say("remove");
  remove.addEventListener("click", () => { li.remove(); renumberPhotos(form); });
  li.append(img, status, remove);
  form.querySelector("[data-thumbs]").append(li);
  li.file = file;  // kept: offline, the report takes the photo itself to the outbox
  const body = new FormData();
  body.append("file", file);
  const later = () => { status.textContent = say("photoLater"); };
  const done = (navigator.onLine === false ? Promise.reject(new Error("offline"))
    : api("../v1/photos", { method: "POST", body })).then(({ status: code, body: b }) => {
    if (code === 201 && b && b.ref) {
      li.dataset.ref = b.ref;
      status.textContent = say("uploaded");
    } else if (code >= 400 && code < 500 && code !== 401 && code !== 408 && code !== 429) {
      li.classList.add("invalid");
      status.textContent = messagesOf(b).join("；") || `HTTP ${code}`;
    } else {
      later();
    }
    renumberPhotos(form);
  }).catch(later);
  uploads.push(done);
}

function renumberPhotos(form) {  // report.submitted's photos[i] is the i-th uploaded one
  [...form.querySelectorAll("[data-thumbs] li[data-ref]")].forEach((li, i) => {
    li.dataset.path = `photos[${i}]`;
  });
}

// -- wiring ---------------------------------------------------------------------------------
function showTab() {
  const id = (location.hash || "#activity").slice(1);
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== id;
  for (const a of document.querySelectorAll(".tabs a")) {
    a.setAttribute("aria-selected", String(a.getAttribute("href") === `#${id}`));
  }
}

function defaultTimes(form) {  // this morning, 9 to 12
  const now = new Date();
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 9, 0);
  const end = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 12, 0);
  form.elements.namedItem("started_at").value = localInput(start);
  form.elements.namedItem("ended_at").value = localInput(end);
}

function wireActivity(form) {
  defaultTimes(form);
  const served = form.elements.namedItem("served");
  const toggle = () => {
    const fair = isFair(form);
    form.querySelector(".fair-only").hidden = !fair;
    for (const el of form.querySelectorAll(".not-fair")) el.hidden = fair;
    served.readOnly = fair;
    const list = form.querySelector('[data-rows="stalls"]');
    if (fair && !list.children.length) addRow(list);
    if (fair) served.value = String(stallsServed(form));
  };
  form.elements.namedItem("fair").addEventListener("change", toggle);
  form.addEventListener("cleared", toggle);
  form.addEventListener("input", (event) => {
    if (isFair(form) && event.target.closest('[data-rows="stalls"]')) {
      served.value = String(stallsServed(form));
    }
  });
}

function wireNeed(form) {
  const today = new Date();
  const stamp = `${today.getFullYear()}${pad(today.getMonth() + 1)}${pad(today.getDate())}`;
  form.elements.namedItem("need_id").value = `unit-${stamp}-${uuid4().slice(0, 8)}`;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      lang = b.dataset.lang;
      localStorage.setItem(LANG_KEY, lang);
      applyLang();
    });
  }
  for (const form of document.querySelectorAll("form[data-kind]")) {
    fresh(form);
    form.addEventListener("submit", (event) => { event.preventDefault(); send(form); });
    for (const kind of ["input", "change"]) {  // touched: a new one to send
      form.addEventListener(kind, () => { delete form.dataset.sent; });
    }
    form.addEventListener("click", (event) => {
      if (event.target.closest("[data-add], .remove")) delete form.dataset.sent;
      const add = event.target.closest("[data-add]");
      if (add) addRow(form.querySelector(`[data-rows="${add.dataset.add}"]`));
      const remove = event.target.closest(".row .remove");
      if (remove) {
        const list = remove.closest("[data-rows]");
        remove.closest(".row").remove();
        renumber(list);
        if (list.dataset.rows === "stalls" && isFair(form)) {
          form.elements.namedItem("served").value = String(stallsServed(form));
        }
      }
    });
  }
  wireActivity(document.getElementById("form-activity"));
  for (const form of document.querySelectorAll("form[data-kind]")) linkBaseAndPairing(form);
  wireNeed(document.getElementById("form-need-submit"));
  const report = document.getElementById("form-report");
  report.elements.namedItem("photo-files").addEventListener("change", (event) => {
    for (const file of event.target.files) upload(report, file);
    event.target.value = "";
  });
  // Resolving: the claiming unit is the one that claimed the chosen need.
  const resolve = document.getElementById("form-need-resolve");
  resolve.elements.namedItem("need_id").addEventListener("change", (event) => {
    const need = (choices?.needs || []).find((n) => n.need_id === event.target.value);
    if (need && need.claimed_by) resolve.elements.namedItem("organization_id").value = need.claimed_by;
  });
  // A need that may repeat another: named beside its picker, linked with one button.
  for (const form of document.querySelectorAll("form[data-kind^='need.']")) {
    const picker = form.elements.namedItem("need_id");
    if (picker && picker.tagName === "SELECT") picker.addEventListener("change", showDuplicates);
    const button = form.querySelector(".link-duplicate");
    if (button) button.addEventListener("click", () => linkDuplicate(form));
  }
  window.addEventListener("hashchange", showTab);
  applyLang();
  showTab();
  const linkAsked = new URLSearchParams(location.search).get("link");
  loadChoices().then(() => { if (linkAsked) chooseLink(linkAsked); });
  api("../v1/whoami").then(({ status, body }) => {
    if (status !== 200 || !body) return;
    me = `${body.kind}:${body.id}`;
    localStorage.setItem(WHO_KEY, me);
    renderOutbox();
  }).catch(() => undefined);  // offline: the login last seen here
  // Offline: the service worker keeps the page and its choices; the outbox sends what waits.
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch(() => undefined);
    navigator.serviceWorker.ready.then(() => {
      document.documentElement.dataset.offline = "ready";  // opens with no network from now
    }).catch(() => undefined);
  }
  Outbox.listen(() => {  // the worker sent something
    renderOutbox().then(() => loadChoices()).catch(() => undefined);
  });
  showNetwork();
  window.addEventListener("offline", showNetwork);
  window.addEventListener("online", () => { showNetwork(); flushOutbox(true); });
  renderOutbox().then(() => flushOutbox(true));
  setInterval(() => flushOutbox(false), 5000);  // what is due, with back-off per entry
});
