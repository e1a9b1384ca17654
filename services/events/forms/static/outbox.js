// The forms' outbox (本机待发送): entries filled in on this device, kept in IndexedDB until the
// server has answered them. Loaded by the page (a <script>) and by the service worker
// (importScripts), so both send the same way: the page on the `online` event and on a timer
// while it is open, the worker on Background Sync where the browser has it.
//
// An entry keeps the ids it was made with (event_id, activity_id), so sending it twice, from
// the page and the worker at once, or again after a lost answer, is one event: the server
// dedupes by event_id. Its photos are kept as Blobs and uploaded first; the photo store names
// them by their SHA-256, so an upload repeated is the same photo.
//
// An entry is sent only under the login that made it (`who`, the key or account of
// `GET /v1/whoami`): on a phone shared by a unit's people, one person's entries wait for that
// person to log in again, and are never sent in another's name.
//
// An answer decides an entry: 2xx sent; 4xx refused (shown by its entry, never retried),
// except 401 (log in again), 408 and 429; anything else (5xx, no network) is tried again
// with back-off, in order: an entry waits for the ones made before it (a report names the
// activity logged just before it).
"use strict";

// eslint-disable-next-line no-unused-vars
const Outbox = (() => {
  const DB = "tongxin-forms";
  const STORE = "outbox";
  const RETRY_MS = 5000;          // the first retry; doubled each time
  const RETRY_MAX_MS = 5 * 60_000;
  const KEEP_SENT_MS = 7 * 24 * 3600_000;  // what was sent stays listed for a week
  const CHANNEL = "tongxin-outbox";
  const AGAIN = new Set([401, 408, 429]);

  function request(r) {
    return new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  }

  function open() {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: "id" });
    return request(r);
  }

  async function transact(mode, work) {
    const db = await open();
    try {
      const t = db.transaction(STORE, mode);
      const done = new Promise((resolve, reject) => {
        t.oncomplete = resolve;
        t.onerror = () => reject(t.error);
        t.onabort = () => reject(t.error);
      });
      const out = await work(t.objectStore(STORE));
      await done;
      return out;
    } finally {
      db.close();
    }
  }

  const all = async () => (await transact("readonly", (s) => request(s.getAll())))
    .sort((a, b) => a.created - b.created);

  const add = (entry) => transact("readwrite", (s) => request(s.put(entry)));

  const remove = (id) => transact("readwrite", (s) => request(s.delete(id)));

  async function settle(id, change) {
    // Read and written in one transaction: an entry another sender has decided stays decided.
    return transact("readwrite", async (s) => {
      const entry = await request(s.get(id));
      if (!entry || entry.state !== "waiting") return entry;
      Object.assign(entry, change);
      await request(s.put(entry));
      return entry;
    });
  }

  function tell() {
    try {
      const c = new BroadcastChannel(CHANNEL);
      c.postMessage("changed");
      c.close();
    } catch { /* no BroadcastChannel: the page refreshes its list itself */ }
  }

  function listen(callback) {
    try { new BroadcastChannel(CHANNEL).onmessage = callback; } catch { /* see tell */ }
  }

  async function answer(response) {
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    return { status: response.status, body };
  }

  function decided(status, body) {
    if (status >= 200 && status < 300) return { outcome: "sent", status, body };
    if (status >= 400 && status < 500 && !AGAIN.has(status)) {
      return { outcome: "refused", status, body };
    }
    return { outcome: "retry", status, body };
  }

  async function deliver(entry) {
    // One attempt: its photos (each stored once whatever happens), then the entry itself.
    const headers = { "Accept": "application/json", "Accept-Language": entry.lang || "zh-CN" };
    const refs = [];
    try {
      for (const [i, photo] of (entry.photos || []).entries()) {
        if (photo.ref) { refs.push(photo.ref); continue; }
        const form = new FormData();
        form.append("file", photo.blob, photo.name || "photo");
        const { status, body } = await answer(await fetch(entry.photos_url, {
          method: "POST", body: form, headers, credentials: "same-origin" }));
        if (status !== 201 || !body || !body.ref) {
          const result = decided(status === 201 ? 500 : status, body);
          if (result.outcome === "refused" && body && body.errors) {  // the photo's, by its place
            body.errors = body.errors.map((e) => ({ ...e, field: `data.photos[${i}]` }));
          }
          return result;
        }
        refs.push(body.ref);
      }
      const payload = JSON.parse(entry.body);
      if (entry.photos) payload.data.photos = refs;
      const { status, body } = await answer(await fetch(entry.url, {
        method: "POST", body: JSON.stringify(payload), credentials: "same-origin",
        headers: { ...headers, "Content-Type": "application/json", ...(entry.headers || {}) } }));
      return decided(status, body);
    } catch {
      return { outcome: "retry", status: 0, body: null };  // no network, or no answer
    }
  }

  async function whoami(near) {
    // The login this device sends under now: {label} or, if none answers, {status}.
    try {
      const response = await fetch(new URL("whoami", near).href, {
        credentials: "same-origin", headers: { "Accept": "application/json" } });
      const { status, body } = await answer(response);
      return status === 200 && body ? { label: `${body.kind}:${body.id}` } : { status };
    } catch {
      return { status: 0 };
    }
  }

  function wait(tries) {
    const ms = Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** tries);
    return ms / 2 + Math.random() * ms / 2;
  }

  async function record(entry, result) {
    if (result.outcome === "sent") {
      const b = result.body || {};
      // Sent: its photos are on the server now; the device keeps only their refs.
      return settle(entry.id, { state: "sent", sent_at: Date.now(), photos: undefined,
                                answer: { event_id: b.event_id, seq: b.seq ?? null,
                                          duplicate: !!b.duplicate } });
    }
    if (result.outcome === "refused") {
      const errors = (result.body && result.body.errors)
        || [{ field: "", message: `HTTP ${result.status}` }];
      return settle(entry.id, { state: "refused", refused_at: Date.now(),
                                status: result.status, errors });
    }
    return settle(entry.id, { tries: (entry.tries || 0) + 1, last_status: result.status,
                              next_at: Date.now() + wait(entry.tries || 0) });
  }

  async function pass(force) {
    // Each waiting entry in the order made; stops at the first that must wait (the network is
    // down, or the server is: the later ones would fare no better, and order is kept).
    let waiting = 0;
    let changed = false;
    let who;  // asked once a pass, before the first entry due
    const now = Date.now();
    for (const entry of await all()) {
      if (entry.state === "sent" && now - entry.sent_at > KEEP_SENT_MS) {
        await remove(entry.id);
        changed = true;
        continue;
      }
      if (entry.state !== "waiting") continue;
      if (waiting || (!force && (entry.next_at || 0) > now)) { waiting += 1; continue; }
      if (who === undefined) {
        const found = await whoami(entry.url);
        if (found.label === undefined) {  // no network, or logged out: try again later
          await record(entry, { outcome: "retry", status: found.status });
          changed = true;
          waiting += 1;
          continue;
        }
        who = found.label;
      }
      if (entry.who && entry.who !== who) {  // another login's: left for it
        if (entry.other !== who) {
          await settle(entry.id, { other: who });
          changed = true;
        }
        continue;
      }
      const result = await deliver(entry);
      await record(entry, result);
      changed = true;
      if (result.outcome === "retry") waiting += 1;
    }
    if (changed) tell();
    return { waiting, changed };
  }

  let running = null;

  function flush(force = false) {
    // One pass at a time in this page or worker, and across them where Web Locks exist.
    if (!running) {
      const locks = typeof navigator !== "undefined" && navigator.locks;
      running = (locks ? locks.request(CHANNEL, () => pass(force)) : pass(force))
        .finally(() => { running = null; });
    }
    return running;
  }

  return { all, add, remove, deliver, record, flush, listen, tell, SYNC_TAG: CHANNEL };
})();
