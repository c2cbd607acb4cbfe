// sockit's page: log in, browse, upload (chunked, checked, resumable) and
// download. It talks only to the JSON API of docs/protocol.md §11.
"use strict";

const $ = (id) => document.getElementById(id);

// ---- talking to the server -------------------------------------------------

class Refused extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
  }
}

async function call(method, url, body) {
  const headers = {};
  // Requests that change something carry X-Sockit, which no other site's
  // page can add (the server's CSRF rule).
  if (method !== "GET") headers["X-Sockit"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401) showLogin("Your session ended; log in again.");
    throw new Refused(response.status, parsed);
  }
  return parsed;
}

const fileUrl = (path) => "/files/" + path.split("/").map(encodeURIComponent).join("/");
const joinPath = (dir, name) => (dir ? dir + "/" + name : name);

// ---- views -----------------------------------------------------------------

let session = null;

function show(view) {
  for (const id of ["login", "files", "chat", "dashboard", "assistant"]) $(id).hidden = id !== view;
  // The assistant's log and send box want the width of the window.
  document.body.classList.toggle("wide", view === "assistant");
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.id === "nav-" + view);
  }
  $("nav").hidden = view === "login";
  $("logout").hidden = view === "login" || !session || !session.needs_login;
}

function showLogin(message) {
  session = null;
  $("login-error").textContent = message || "";
  show("login");
  $("token").focus();
}

async function start() {
  const match = location.hash.match(/^#token=([0-9a-fA-F]+)/);
  if (match) {
    // The token leaves the address bar at once: it must not end up in
    // bookmarks, screenshots or the history.
    history.replaceState(null, "", location.pathname + "#/");
    if (await login(match[1])) return;
    return;
  }
  const s = await call("GET", "/api/session");
  if (!s.logged_in) return showLogin();
  enter(s);
}

async function login(token) {
  try {
    const s = await call("POST", "/api/login", { token: token.trim() });
    s.needs_login = true;
    enter(s);
    return true;
  } catch (e) {
    showLogin(e.status === 401 ? "That token is not this server's." : e.message);
    return false;
  }
}

function enter(s) {
  session = s;
  if (s.needs_login === undefined) s.needs_login = true;
  document.body.classList.toggle("read-only", s.read_only);
  document.body.classList.toggle("upload-only", s.upload_only);
  $("nav-chat").hidden = !s.chat;
  $("nav-assistant").hidden = !s.assistant;
  route();
}

/// The view the address names: `#chat`, or a folder (`#/photos/2026`).
function route() {
  if (!session) return;
  if (location.hash === "#chat" && session.chat) {
    show("chat");
    chat.open();
  } else if (location.hash === "#dashboard") {
    show("dashboard");
    dashboard.open();
  } else if (location.hash.startsWith("#assistant")) {
    show("assistant");
    assistant.open(location.hash.slice("#assistant/".length));
  } else {
    show("files");
    openFolder(currentFolder());
  }
}

// ---- the file list ---------------------------------------------------------

let folder = "";
let entries = [];
let sort = { key: "name", dir: 1 };

function currentFolder() {
  if (!location.hash.startsWith("#/")) return "";
  return decodeURIComponent(location.hash.slice(2)).replace(/\/+$/, "");
}

async function openFolder(path) {
  folder = path;
  renderCrumbs();
  $("files-error").textContent = "";
  if (session && session.upload_only) {
    entries = [];
    renderEntries();
    return;
  }
  try {
    entries = await call("GET", "/api/ls?path=" + encodeURIComponent(path));
  } catch (e) {
    entries = [];
    $("files-error").textContent = e.message;
  }
  renderEntries();
}

function renderCrumbs() {
  const crumbs = $("crumbs");
  crumbs.replaceChildren();
  const parts = folder ? folder.split("/") : [];
  const add = (label, target) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = label;
    a.href = "#/" + target.split("/").map(encodeURIComponent).join("/");
    li.append(a);
    crumbs.append(li);
  };
  add("Home", "");
  parts.forEach((p, i) => add(p, parts.slice(0, i + 1).join("/")));
}

function sortedEntries() {
  const { key, dir } = sort;
  return [...entries].sort((a, b) => {
    // Folders first, whatever the order.
    if ((a.type === "dir") !== (b.type === "dir")) return a.type === "dir" ? -1 : 1;
    const x = key === "name" ? a.path.toLowerCase() : a[key];
    const y = key === "name" ? b.path.toLowerCase() : b[key];
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  });
}

function renderEntries() {
  const body = $("entries");
  body.replaceChildren();
  for (const e of sortedEntries()) body.append(entryRow(e));
  $("empty").hidden = entries.length > 0 || (session && session.upload_only);
  $("listing").hidden = session && session.upload_only;
}

function entryRow(e) {
  const path = joinPath(folder, e.path);
  const tr = document.createElement("tr");
  tr.dataset.name = e.path;
  tr.dataset.type = e.type;
  const name = document.createElement("td");
  const a = document.createElement("a");
  a.className = e.type === "dir" ? "dir" : "file";
  if (e.type === "dir") {
    a.textContent = e.path + "/";
    a.href = "#/" + path.split("/").map(encodeURIComponent).join("/");
  } else {
    a.textContent = e.path;
    a.href = fileUrl(path);
    a.setAttribute("download", e.path);
  }
  name.append(a);
  const size = document.createElement("td");
  size.className = "num";
  size.textContent = e.type === "dir" ? "" : formatBytes(e.size);
  size.title = e.type === "dir" ? "" : e.size + " bytes";
  const mtime = document.createElement("td");
  // 0: the server does not know (an object store's folder has no time).
  mtime.textContent = e.mtime ? new Date(e.mtime * 1000).toLocaleString() : "";
  const actions = document.createElement("td");
  actions.className = "actions";
  if (e.type === "dir") {
    const zip = document.createElement("a");
    zip.className = "zip";
    zip.textContent = "Download .zip";
    zip.href = "/api/zip?path=" + encodeURIComponent(path);
    zip.setAttribute("download", e.path + ".zip");
    actions.append(zip);
  }
  const rename = button("Rename", () => renameEntry(e));
  const remove = button("Delete", () => deleteEntry(e));
  rename.classList.add("writes");
  remove.classList.add("writes");
  actions.append(rename, remove);
  tr.append(name, size, mtime, actions);
  return tr;
}

function button(label, onclick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.className = "quiet";
  b.addEventListener("click", onclick);
  return b;
}

async function act(work) {
  $("files-error").textContent = "";
  try {
    await work();
  } catch (e) {
    $("files-error").textContent = e.message;
  }
  await openFolder(folder);
}

function renameEntry(e) {
  const to = prompt(`Rename ${e.path} to:`, e.path);
  if (!to || to === e.path) return;
  act(() => call("POST", "/api/rename", { from: joinPath(folder, e.path), to: joinPath(folder, to) }));
}

function deleteEntry(e) {
  const isDir = e.type === "dir";
  const question = isDir ? `Delete the folder ${e.path} and everything in it?` : `Delete ${e.path}?`;
  if (!confirm(question)) return;
  act(() => call("POST", "/api/rm", { path: joinPath(folder, e.path), recursive: isDir }));
}

function makeFolder() {
  const name = prompt("New folder name:");
  if (!name) return;
  act(() => call("POST", "/api/mkdir", { path: joinPath(folder, name) }));
}

// ---- uploads ---------------------------------------------------------------

const queue = [];
let running = false;
let totals = { bytes: 0, done: 0, started: 0 };

function enqueue(files) {
  for (const { file, rel } of files) {
    const item = { file, path: joinPath(folder, rel), sent: 0, xhr: null, cancelled: false };
    item.row = transferRow(item);
    queue.push(item);
    totals.bytes += file.size;
  }
  $("transfers").hidden = queue.length === 0;
  if (!running) runQueue();
}

function transferRow(item) {
  const li = document.createElement("li");
  li.dataset.path = item.path;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = item.path;
  const bar = document.createElement("progress");
  bar.max = Math.max(item.file.size, 1);
  bar.value = 0;
  const text = document.createElement("span");
  text.className = "status";
  text.textContent = "waiting";
  const cancel = button("Cancel", () => cancelUpload(item));
  li.append(name, bar, text, cancel);
  $("transfer-list").append(li);
  item.bar = bar;
  item.text = text;
  item.cancelButton = cancel;
  return li;
}

async function runQueue() {
  running = true;
  totals.started = performance.now();
  while (queue.length) {
    const item = queue[0];
    if (!item.cancelled) {
      try {
        await uploadOne(item);
      } catch (e) {
        if (!item.cancelled) setStatus(item, "failed: " + e.message, "failed");
      }
    }
    queue.shift();
    totals.done += item.file.size;
    updateTotal(0);
    if (!queue.length || folderOf(item.path) === folder) openFolder(folder);
  }
  running = false;
}

const folderOf = (path) => path.split("/").slice(0, -1).join("/");

function setStatus(item, text, state) {
  item.text.textContent = text;
  if (state) item.row.dataset.state = state;
  if (state && state !== "running") item.cancelButton.hidden = true;
}

async function digest(buffer) {
  if (window.isSecureContext && crypto.subtle) {
    const d = await crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return window.sockitSha256(buffer);
}

/// Opens the upload on the server, continuing what it holds when its last
/// bytes are the same as this file's there.
async function openUpload(item) {
  const size = item.file.size;
  let state = await call("POST", "/api/upload/open", { path: item.path, size });
  if (state.offset > 0 && state.tail_len > 0) {
    const tail = await item.file.slice(state.offset - state.tail_len, state.offset).arrayBuffer();
    if ((await digest(tail)) !== state.tail_sha256) {
      state = await call("POST", "/api/upload/open", { path: item.path, size, restart: true });
    }
  }
  return state.offset;
}

async function uploadOne(item) {
  const file = item.file;
  const chunk = session.chunk;
  setStatus(item, "starting", "running");
  let offset = await openUpload(item);
  item.resumedFrom = offset;
  item.sent = offset;
  if (offset > 0) setStatus(item, `resuming at ${formatBytes(offset)}`, "running");
  let failures = 0;
  for (;;) {
    const end = Math.min(offset + chunk, file.size);
    const buffer = await file.slice(offset, end).arrayBuffer();
    const sha = await digest(buffer);
    let stored;
    try {
      stored = await sendChunk(item, offset, buffer, sha);
      failures = 0;
    } catch (e) {
      if (item.cancelled) return;
      // A dropped connection or a restarted server: ask where things
      // stand and go on from there, a few times.
      if (e.status === undefined || e.status === 409 || e.status === 422 || e.status >= 500) {
        if (++failures > 5) throw e;
        setStatus(item, `retrying (${e.message})`, "running");
        await new Promise((r) => setTimeout(r, 500 * failures));
        offset = await openUpload(item);
        item.sent = offset;
        continue;
      }
      throw e;
    }
    offset = stored.offset;
    item.sent = offset;
    if (stored.done) {
      item.bar.value = item.bar.max;
      const from = item.resumedFrom ? `, resumed at ${formatBytes(item.resumedFrom)}` : "";
      // A resume on an object store has no whole-file hash: the server
      // holds only the parts it stored, each chunk checked by SHA-256.
      const hash = stored.xxh3 ? `xxh3 ${stored.xxh3}` : "every chunk checked";
      setStatus(item, `done, ${hash}${from}`, "done");
      if (stored.xxh3) item.row.dataset.xxh3 = stored.xxh3;
      return;
    }
  }
}

function sendChunk(item, offset, buffer, sha) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("PUT", `/api/upload/chunk?path=${encodeURIComponent(item.path)}&offset=${offset}`);
    xhr.setRequestHeader("X-Sockit", "1");
    xhr.setRequestHeader("X-Sockit-Sha256", sha);
    xhr.upload.onprogress = (ev) => {
      item.sent = offset + ev.loaded;
      item.bar.value = item.sent;
      updateTotal(item.sent);
      setStatus(item, `${formatBytes(item.sent)} of ${formatBytes(item.file.size)}`);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_) {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Refused(xhr.status, body));
    };
    xhr.onerror = () => reject(new Error("connection lost"));
    xhr.onabort = () => reject(new Error("cancelled"));
    xhr.send(buffer);
  });
}

async function cancelUpload(item) {
  item.cancelled = true;
  if (item.xhr) item.xhr.abort();
  setStatus(item, "cancelled", "cancelled");
  try {
    await call("POST", "/api/upload/cancel", { path: item.path });
  } catch (_) {
    // Nothing was open: nothing to cancel.
  }
}

function updateTotal(currentSent) {
  const done = totals.done + currentSent;
  const bar = $("total-bar");
  bar.max = Math.max(totals.bytes, 1);
  bar.value = done;
  const seconds = (performance.now() - totals.started) / 1000;
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 ? (totals.bytes - done) / rate : 0;
  $("total-text").textContent =
    `${formatBytes(done)} of ${formatBytes(totals.bytes)}, ${formatBytes(rate)}/s` +
    (eta > 0.5 ? `, ${Math.ceil(eta)} s left` : "");
}

// Folders dropped on the page: walk them, keeping the relative paths.
async function dropped(items) {
  const files = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      files.push({ file, rel: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  const entriesToWalk = [];
  for (const item of items) {
    const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
    if (entry) entriesToWalk.push(entry);
  }
  for (const entry of entriesToWalk) await walk(entry);
  enqueue(files);
}

function formatBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

// ---- wiring ----------------------------------------------------------------

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  login($("token").value);
});
$("logout").addEventListener("click", async () => {
  await call("POST", "/api/logout");
  showLogin("Logged out.");
});
$("mkdir").addEventListener("click", makeFolder);
$("pick-files").addEventListener("change", (ev) => {
  enqueue([...ev.target.files].map((file) => ({ file, rel: file.name })));
  ev.target.value = "";
});
$("pick-folder").addEventListener("change", (ev) => {
  enqueue([...ev.target.files].map((file) => ({ file, rel: file.webkitRelativePath || file.name })));
  ev.target.value = "";
});
for (const b of document.querySelectorAll("button.sort")) {
  b.addEventListener("click", () => {
    const key = b.dataset.key;
    sort = { key, dir: sort.key === key ? -sort.dir : 1 };
    renderEntries();
  });
}
const drop = $("drop");
document.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  drop.classList.add("over");
});
document.addEventListener("dragleave", () => drop.classList.remove("over"));
document.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  if (session && !session.read_only) dropped(ev.dataTransfer.items);
});
window.addEventListener("hashchange", route);

// ---- the chat room ---------------------------------------------------------

const chat = {
  socket: null,
  nick: null,

  open() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/chat`);
    this.socket = socket;
    $("chat-status").textContent = "joining…";
    socket.onopen = () => {
      $("chat-status").textContent = "";
      $("chat-input").focus();
    };
    socket.onmessage = (ev) => {
      const message = JSON.parse(ev.data);
      if (message.line !== undefined) this.show(message.line);
      if (message.present) this.present(message.present);
    };
    socket.onclose = () => {
      if (this.socket === socket) this.socket = null;
      $("chat-status").textContent = "Not in the room. Open Chat again to rejoin.";
    };
  },

  /// A line from the room, styled by its marker.
  show(line) {
    const li = document.createElement("li");
    li.textContent = line;
    if (line.startsWith("*** ")) li.className = "notice";
    else if (line.startsWith("!!! ")) li.className = "error";
    else if (line.startsWith("*")) li.className = "private";
    const welcome = line.match(/^\*\*\* welcome, (\S+):/);
    if (welcome) this.nick = welcome[1];
    const renamed = line.match(/^\*\*\* (\S+) is now known as (\S+)$/);
    if (renamed && renamed[1] === this.nick) this.nick = renamed[2];
    this.append(li);
  },

  append(li) {
    const list = $("chat-lines");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(li);
    while (list.children.length > 1000) list.firstChild.remove();
    if (atBottom) list.scrollTop = list.scrollHeight;
  },

  present(nicks) {
    $("present-count").textContent = `(${nicks.length})`;
    $("present").replaceChildren(
      ...nicks.map((n) => {
        const li = document.createElement("li");
        li.textContent = n;
        if (n === this.nick) li.className = "me";
        return li;
      }),
    );
  },

  send(text) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(text);
    // The room sends a member's lines to everyone else: show ours here.
    if (!text.startsWith("/") || text.startsWith("//")) {
      const li = document.createElement("li");
      li.className = "mine";
      li.textContent = `<${this.nick || "me"}> ${text.startsWith("//") ? text.slice(1) : text}`;
      this.append(li);
    }
  },
};

$("chat-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("chat-input");
  if (input.value) chat.send(input.value);
  input.value = "";
});

start().catch((e) => showLogin(e.message));

// ---- the dashboard ---------------------------------------------------------

const dashboard = {
  socket: null,

  open() {
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/stats/live`);
    this.socket = socket;
    socket.onmessage = (ev) => this.render(JSON.parse(ev.data));
    socket.onopen = () => ($("dashboard-status").textContent = "");
    socket.onclose = () => {
      if (this.socket === socket) this.socket = null;
      $("dashboard-status").textContent = "Not updating: the server went away. Open Dashboard again to retry.";
    };
  },

  render(stats) {
    $("service-rows").replaceChildren(
      ...stats.listeners.map((l) => {
        const tr = document.createElement("tr");
        tr.dataset.service = l.service;
        for (const [text, num] of [
          [l.service, false],
          [`${l.proto} ${l.addr}`, false],
          [String(l.open), true],
          [String(l.total), true],
          [formatBytes(l.bytes_in), true],
          [formatBytes(l.bytes_out), true],
        ]) {
          const td = document.createElement("td");
          td.textContent = text;
          if (num) td.className = "num";
          tr.append(td);
        }
        return tr;
      }),
    );
    $("no-transfers").hidden = stats.transfers.length > 0;
    $("live-transfers").replaceChildren(
      ...stats.transfers.map((t) => {
        const li = document.createElement("li");
        li.dataset.kind = t.kind;
        li.dataset.name = t.name;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = `${t.kind} ${t.name}`;
        const bar = document.createElement("progress");
        if (t.size) {
          bar.max = Math.max(t.size, 1);
          bar.value = t.done;
        }
        const text = document.createElement("span");
        text.className = "status";
        const of = t.size ? ` of ${formatBytes(t.size)}` : "";
        text.textContent = `${formatBytes(t.done)}${of}, ${formatBytes(t.bytes_per_second)}/s` + (t.peer ? `, ${t.peer}` : "");
        li.append(name, bar, text);
        return li;
      }),
    );
  },
};
