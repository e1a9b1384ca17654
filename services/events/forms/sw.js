// The forms' service worker (scope /forms/, served by the events service at /forms/sw.js):
// keeps the page, its script, style, icons and the caller's choices in a cache so the forms
// open with no network, and sends the outbox on Background Sync (static/outbox.js).
// Everything it fetches is on this origin; it never touches a POST (the outbox sends those).
"use strict";

importScripts("../static/forms/outbox.js");

const CACHE = "tongxin-forms-v1";
// Relative to this script (/forms/sw.js). The page is cached as "./" whatever its hash.
const SHELL = ["./", "../static/forms/forms.js", "../static/forms/forms.css",
               "../static/forms/outbox.js", "../static/favicon.svg",
               "../static/forms/manifest.webmanifest", "../static/forms/icon-192.png",
               "../static/forms/icon-512.png", "../v1/forms/choices"];
const KEYS = new Set(SHELL.map((u) => new URL(u, self.location.href).href));
const PAGE = new URL("./", self.location.href).href;
const NETWORK_MS = 6000;  // a weak signal: after this, the cached copy

async function store(key, response) {
  if (response.ok && response.type === "basic") {
    await (await caches.open(CACHE)).put(key, response);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    await Promise.all(SHELL.map(async (u) => {
      const key = new URL(u, self.location.href).href;
      try { await store(key, await fetch(key, { credentials: "same-origin" })); } catch { /* later */ }
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("tongxin-forms-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

async function networkFirst(request, key) {
  // The network's copy when it answers in time (and kept for next time), else the cached one.
  const cached = caches.match(key);
  const fetched = fetch(request).then(async (response) => {
    await store(key, response.clone());
    return response;
  });
  const late = new Promise((resolve) => setTimeout(resolve, NETWORK_MS));
  try {
    const first = await Promise.race([fetched, late.then(async () => (await cached) || fetched)]);
    return first;
  } catch {
    const fallback = await cached;
    if (fallback) return fallback;
    throw new Error("offline, and not cached");
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  url.hash = "";
  const key = request.mode === "navigate" && url.pathname === new URL(PAGE).pathname
    ? PAGE : url.href;
  if (!KEYS.has(key)) return;
  event.respondWith(networkFirst(request, key));
});

self.addEventListener("sync", (event) => {
  if (event.tag !== Outbox.SYNC_TAG) return;
  // Still waiting: the browser tries the sync again later, with its own back-off.
  event.waitUntil(Outbox.flush(true).then(({ waiting }) => {
    if (waiting) throw new Error(`${waiting} entries still waiting`);
  }));
});
