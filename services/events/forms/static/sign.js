/* The sign-in pages (services/events/forms/sign_in.py): the organiser's page with the QR code
   and the list of who signed in (open sign-ins flagged), and the volunteer's phone page (a
   kiosk's code box without a code). Nothing is fetched from another host. */
"use strict";

const T = {
  opened: "签到页已打开|The sign-in page is open",
  signedIn: "已签到|Signed in",
  signedOut: "已签退|Signed out",
  hours: "小时|h",
  open: "未签退（未确认，不计时长）|Not signed out (unconfirmed, no hours)",
  confirmed: "已确认|Confirmed",
  declined: "已驳回|Declined",
  openCount: "位志愿者未签退|volunteer(s) not signed out",
  noActivity: "没有可签到的活动|No activity to sign in to",
  failed: "网络错误，请重试|Network error, please try again",
  noLocation: "无法获取位置|Could not get the location",
};

let lang = localStorage.getItem("tongxin-lang") || "zh";

function say(text) {
  const [zh, en] = text.split("|");
  return lang === "en" ? (en || zh) : zh;
}

function t(key) {
  return say(T[key]);
}

function translate() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = say(el.dataset.t);
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  }
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(lang === "en" ? "en-GB" : "zh-CN", {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"});
}

function span(start, end) {
  return `${when(start)} – ${when(end)}`;
}

async function call(url, body) {
  const init = {headers: {"Accept-Language": lang === "en" ? "en" : "zh-CN"},
                credentials: "same-origin"};
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return {ok: r.ok, status: r.status, data};
}

function outcome(form, ok, text, errors) {
  const el = form.querySelector(".outcome");
  el.hidden = false;
  el.className = "outcome " + (ok ? "ok" : "bad");
  el.textContent = text || "";
  for (const f of form.querySelectorAll(".field")) f.classList.remove("invalid");
  if (errors && errors.length) {
    const list = document.createElement("ul");
    for (const e of errors) {
      const li = document.createElement("li");
      li.textContent = e.message;
      li.dataset.field = e.field;
      list.append(li);
      const path = String(e.field || "").replace(/^data\./, "");
      const field = form.querySelector(`.field[data-path="${path}"]`);
      if (field) field.classList.add("invalid");
    }
    el.append(list);
  }
}

// -- the organiser's page -------------------------------------------------------------------

async function organiser() {
  const form = document.getElementById("open-page");
  const select = document.getElementById("activity");
  const wanted = new URLSearchParams(location.search).get("activity");
  const choices = await call("../v1/forms/choices");
  const activities = choices.ok ? choices.data.activities : [];
  for (const a of activities) {
    const o = document.createElement("option");
    o.value = a.activity_id;
    o.textContent = `${a.title} (${when(a.started_at)})`;
    select.append(o);
  }
  if (wanted && !activities.some(a => a.activity_id === wanted)) {
    const o = document.createElement("option");
    o.value = wanted;
    o.textContent = wanted;
    select.append(o);
  }
  if (wanted) select.value = wanted;
  if (!select.options.length) outcome(form, false, t("noActivity"));
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const r = await call("../v1/sign-in/pages", {activity_id: select.value});
    if (!r.ok) {
      outcome(form, false, "", (r.data && r.data.errors) || [{field: "", message: t("failed")}]);
      return;
    }
    outcome(form, true, t("opened"));
    show(r.data);
  });
}

let refresh = null;

function show(page) {
  document.getElementById("page").hidden = false;
  document.getElementById("page-title").textContent = page.title || page.activity_id;
  document.getElementById("page-window").textContent = span(page.started_at, page.ended_at);
  document.getElementById("qr").src = `../v1/sign-in/pages/${page.code}/qr.svg`;
  document.getElementById("qr").alt = say("签到二维码|Sign-in QR code");
  document.getElementById("code").textContent = page.code;
  const link = document.getElementById("phone-link");
  link.href = page.url;
  link.textContent = page.url;
  clearInterval(refresh);
  const load = () => list(page.code);
  load();
  refresh = setInterval(load, 3000);
}

async function list(code) {
  const r = await call(`../v1/sign-in/pages/${code}`);
  if (!r.ok) return;
  const body = document.querySelector("#signed tbody");
  body.replaceChildren();
  for (const s of r.data.signed) {
    const tr = document.createElement("tr");
    tr.dataset.volunteer = s.volunteer_id;
    if (s.open) tr.className = "open";
    const cells = [s.name || s.volunteer_id, when(s.signed_in_at), when(s.signed_out_at),
                   s.hours === null ? "—" : String(Math.round(s.hours * 100) / 100),
                   s.open ? t("open") : t(s.status) || s.status];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    body.append(tr);
  }
  const flag = document.getElementById("open-count");
  flag.hidden = !r.data.open_count;
  flag.textContent = `${r.data.open_count} ${t("openCount")}`;
}

// -- the volunteer's phone page -------------------------------------------------------------

function codeInPath() {
  const m = location.pathname.match(/\/sign\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]) : "";
}

function kiosk() {
  const form = document.getElementById("kiosk");
  form.hidden = false;
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const code = document.getElementById("kiosk-code").value.replace(/\s+/g, "").toUpperCase();
    if (code) location.href = encodeURIComponent(code);
  });
}

function place() {
  return new Promise(resolve => {
    if (!navigator.geolocation) { resolve(null); return; }
    navigator.geolocation.getCurrentPosition(
      p => resolve({latitude: p.coords.latitude, longitude: p.coords.longitude}),
      () => resolve(null), {timeout: 10000});
  });
}

async function phone(code) {
  const form = document.getElementById("sign");
  form.hidden = false;
  const about = await call(`${encodeURIComponent(code)}/about`);
  if (!about.ok) {
    outcome(form, false, "", (about.data && about.data.errors) || []);
    return;
  }
  document.getElementById("activity-title").textContent = about.data.title || "";
  document.getElementById("activity-window").textContent =
    span(about.data.started_at, about.data.ended_at);
  const who = document.getElementById("volunteer");
  who.value = localStorage.getItem("tongxin-volunteer") || "";
  const step = async which => {
    const body = {volunteer: who.value.trim()};
    if (document.getElementById("share-location").checked) {
      const p = await place();
      if (!p) { outcome(form, false, t("noLocation")); return; }
      Object.assign(body, p);
    }
    let r;
    try {
      r = await call(`${encodeURIComponent(code)}/${which}`, body);
    } catch (e) {
      outcome(form, false, t("failed"));
      return;
    }
    if (!r.ok) {
      outcome(form, false, "", (r.data && r.data.errors) || [{field: "", message: t("failed")}]);
      return;
    }
    localStorage.setItem("tongxin-volunteer", body.volunteer);
    const d = r.data;
    const name = d.name ? `${d.name}: ` : "";
    const text = d.signed_out_at
      ? `${name}${t("signedOut")} ${when(d.signed_out_at)} · ${Math.round(d.hours * 100) / 100} ${t("hours")}`
      : `${name}${t("signedIn")} ${when(d.signed_in_at)}`;
    outcome(form, true, text);
    const el = form.querySelector(".outcome");
    el.dataset.step = d.signed_out_at ? "out" : "in";
    if (d.seq !== null && d.seq !== undefined) el.dataset.seq = String(d.seq);
  };
  document.getElementById("sign-in").addEventListener("click", () => step("in"));
  document.getElementById("sign-out").addEventListener("click", () => step("out"));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      lang = b.dataset.lang;
      localStorage.setItem("tongxin-lang", lang);
      translate();
    });
  }
  translate();
  if (document.body.dataset.page === "organiser") {
    organiser();
  } else {
    const code = codeInPath();
    if (code) phone(code); else kiosk();
  }
});
