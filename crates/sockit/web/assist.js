// The network debugging assistant (docs/protocol.md §11.8): sessions live in
// the server, so they outlive a reload; this page lists them, watches one
// over a WebSocket (its kept log, then live entries and counters) and sends.
"use strict";

const assistant = {
  sessions: [],
  quick: [],
  current: null, // the watched session's id
  socket: null,
  entries: [], // the watched session's log, as received
  paused: false,
  held: [], // entries that arrived while paused

  async open(id) {
    try {
      const overview = await call("GET", "/api/assist");
      $("as-off").hidden = true;
      $("as-open").hidden = false;
      this.sessions = overview.sessions;
      this.quick = overview.quick;
      $("as-count").textContent = `(${overview.sessions.length} of ${overview.max})`;
      this.renderSessions();
      this.renderQuick();
      const wanted = Number(id) || this.current || (overview.sessions[0] && overview.sessions[0].id);
      if (wanted && overview.sessions.some((s) => s.id === wanted)) this.watch(wanted);
      else $("as-panel").hidden = true;
    } catch (e) {
      $("as-off").hidden = e.status !== 403;
      $("as-open").hidden = e.status === 403;
      $("as-error").textContent = e.status === 403 ? "" : e.message;
    }
  },

  renderSessions() {
    $("as-sessions").replaceChildren(
      ...this.sessions.map((s) => {
        const li = document.createElement("li");
        li.dataset.id = s.id;
        li.textContent = `#${s.id} ${describe(s)}`;
        li.classList.toggle("current", s.id === this.current);
        li.classList.toggle("ended", s.ended);
        li.onclick = () => (location.hash = `#assistant/${s.id}`);
        return li;
      }),
    );
  },

  renderQuick() {
    $("as-quick").replaceChildren(
      ...this.quick.map((q) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = q.name;
        b.title = q.source;
        b.dataset.quick = q.name;
        b.onclick = () => this.send({ quick: q.name });
        return b;
      }),
    );
  },

  watch(id) {
    if (this.current === id && this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    if (this.socket) this.socket.close();
    this.current = id;
    this.entries = [];
    this.held = [];
    $("as-log").replaceChildren();
    $("as-panel").hidden = false;
    this.renderSessions();
    const s = this.sessions.find((x) => x.id === id);
    if (s) this.summary(s);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/assist/sessions/${id}/events`);
    this.socket = socket;
    socket.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.entry) this.entry(m.entry);
      if (m.summary) this.summary(m.summary);
      if (m.missed) this.note(`(${m.missed} entries missed: the page fell behind)`);
    };
    socket.onclose = () => {
      if (this.socket === socket) this.socket = null;
    };
    call("GET", `/api/assist/sessions/${id}/rules`).then((r) => {
      $("as-rules").value = r.toml;
      $("as-rules-on").checked = r.on;
      $("as-rules-state").textContent = r.on ? "(on)" : "";
    });
  },

  summary(s) {
    const i = this.sessions.findIndex((x) => x.id === s.id);
    if (i >= 0) this.sessions[i] = s;
    if (s.id !== this.current) return;
    $("as-title").textContent = `#${s.id} ${describe(s)}`;
    $("as-state").textContent = s.ended ? "ended" : s.local ? `local ${s.local}` : "";
    $("as-counters").textContent =
      `RX ${s.rx_bytes} B / ${s.rx_messages} msgs · TX ${s.tx_bytes} B / ${s.tx_messages} msgs`;
    $("as-counters").dataset.rx = s.rx_messages;
    $("as-counters").dataset.tx = s.tx_messages;
    $("as-stop").hidden = !s.periodic;
    const many = s.kind !== "tcp-client";
    $("as-peers-box").hidden = !many;
    $("as-to").hidden = !many;
    const peers = s.peers || [];
    const key = peers.map((p) => p.id).join(",");
    if ($("as-peers").dataset.key !== key) {
      $("as-peers").dataset.key = key;
      $("as-peers").replaceChildren(
        ...peers.map((p) => {
          const span = document.createElement("span");
          span.className = "peer";
          span.dataset.peer = p.id;
          span.textContent = `#${p.id} ${p.addr}`;
          const x = document.createElement("button");
          x.className = "quiet";
          x.textContent = "disconnect";
          x.onclick = () => this.act(() => call("POST", `/api/assist/sessions/${s.id}/disconnect`, { peer: p.id }));
          span.append(x);
          return span;
        }),
      );
      const to = $("as-to");
      const chosen = to.value;
      to.replaceChildren(
        new Option("to all", ""),
        ...peers.map((p) => new Option(`to #${p.id} ${p.addr}`, String(p.id))),
      );
      to.value = peers.some((p) => String(p.id) === chosen) ? chosen : "";
    }
    const li = document.querySelector(`#as-sessions li[data-id="${s.id}"]`);
    if (li) li.classList.toggle("ended", s.ended);
  },

  entry(e) {
    this.entries.push(e);
    if (this.entries.length > 5000) this.entries.shift();
    if (this.paused) {
      this.held.push(e);
      return;
    }
    this.append(e);
  },

  append(e) {
    if (!this.shown(e)) return;
    const log = $("as-log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(this.line(e));
    while (log.children.length > 3000) log.firstChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  },

  /// Whether the direction and text filters let an entry through.
  shown(e) {
    const dir = $("as-dir").value;
    if (dir && e.kind !== dir) return false;
    const filter = $("as-filter").value;
    return !filter || this.text(e).toLowerCase().includes(filter.toLowerCase());
  },

  text(e) {
    if (!e.data) return e.text || e.kind;
    const bytes = fromBase64(e.data);
    if ($("as-view").value === "hex") return hexdump(bytes);
    // Control bytes shown as escapes, as a terminal would not.
    return new TextDecoder($("as-encoding").value)
      .decode(bytes)
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0"));
  },

  line(e) {
    const li = document.createElement("li");
    li.className = e.data ? e.kind : "event";
    li.dataset.kind = e.kind;
    if (e.peer_id) li.dataset.peer = e.peer_id;
    if ($("as-times").checked) {
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = new Date(e.at).toLocaleTimeString(undefined, { hour12: false }) + "." + String(e.at % 1000).padStart(3, "0");
      li.append(when);
    }
    const mark = document.createElement("span");
    mark.className = "mark";
    const bytes = e.data ? fromBase64(e.data).length : 0;
    mark.textContent = e.kind === "in" ? `< ${bytes} B ` : e.kind === "out" ? `> ${bytes} B ` : "-- ";
    li.append(mark);
    if (e.peer) {
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = `#${e.peer_id} ${e.peer}`;
      li.append(who);
    }
    const body = document.createElement("span");
    body.className = "body";
    const label = { connected: "connected", closed: "closed", answered: "answered by", ended: "", listening: "", note: "" };
    body.textContent = e.data ? (($("as-view").value === "hex") ? "\n" : "") + this.text(e) : [label[e.kind], e.text].filter(Boolean).join(" ");
    li.append(body);
    return li;
  },

  /// Draws the log again (a view, encoding or filter changed).
  redraw() {
    $("as-log").replaceChildren();
    for (const e of this.entries) if (!this.paused || !this.held.includes(e)) this.append(e);
  },

  note(text) {
    this.append({ kind: "note", text, at: Date.now() });
  },

  async act(work) {
    $("as-error").textContent = "";
    try {
      return await work();
    } catch (e) {
      $("as-error").textContent = e.message;
    }
  },

  /// Sends the box's text (or a quick send), once or periodically.
  send(extra) {
    const append = [...document.querySelectorAll(".as-append:checked")].map((c) => c.value);
    const to = $("as-to").hidden || !$("as-to").value ? undefined : Number($("as-to").value);
    const body = {
      text: $("as-text").value,
      hex: $("as-hex").checked,
      append,
      encoding: $("as-encoding").value,
      to,
      ...extra,
    };
    const interval = Number($("as-interval").value);
    if (!extra && interval > 0) {
      body.interval_ms = interval;
      const count = Number($("as-count-n").value);
      if (count > 0) body.count = count;
    }
    return this.act(() => call("POST", `/api/assist/sessions/${this.current}/send`, body));
  },
};

function describe(s) {
  if (s.kind === "tcp-client") return `TCP client → ${s.target}`;
  if (s.kind === "tcp-server") return `TCP server on ${s.local || s.bind}`;
  return `UDP on ${s.local || s.bind}` + (s.target ? ` → ${s.target}` : "");
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/// `00000000  68 65 6c 6c 6f  |hello|`, 16 bytes a line, as `nc --hex`.
function hexdump(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.slice(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  return lines.join("\n");
}

$("as-kind").addEventListener("change", () => {
  const kind = $("as-kind").value;
  $("as-target").hidden = kind === "tcp-server";
  $("as-bind").hidden = kind === "tcp-client";
  $("as-target").placeholder = kind === "udp" ? "host:port to send to (optional)" : "host:port to connect to";
});

$("as-open").addEventListener("submit", (ev) => {
  ev.preventDefault();
  assistant.act(async () => {
    const s = await call("POST", "/api/assist/sessions", {
      kind: $("as-kind").value,
      target: $("as-target").hidden ? "" : $("as-target").value,
      bind: $("as-bind").hidden ? "" : $("as-bind").value,
    });
    location.hash = `#assistant/${s.id}`;
    await assistant.open(s.id);
  });
});

$("as-send").addEventListener("submit", (ev) => {
  ev.preventDefault();
  assistant.send();
});
$("as-text").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    assistant.send();
  }
});
$("as-stop").addEventListener("click", () =>
  assistant.act(() => call("POST", `/api/assist/sessions/${assistant.current}/stop`)),
);
$("as-close").addEventListener("click", () =>
  assistant.act(async () => {
    await call("DELETE", `/api/assist/sessions/${assistant.current}`);
    if (assistant.socket) assistant.socket.close();
    assistant.current = null;
    location.hash = "#assistant";
    await assistant.open();
  }),
);
$("as-file").addEventListener("change", () => {
  const file = $("as-file").files[0];
  if (!file) return;
  const to = $("as-to").hidden || !$("as-to").value ? "" : `?to=${$("as-to").value}`;
  assistant.act(async () => {
    const response = await fetch(`/api/assist/sessions/${assistant.current}/send-file${to}`, {
      method: "POST",
      headers: { "X-Sockit": "1" },
      credentials: "same-origin",
      body: file,
    });
    if (!response.ok) throw new Refused(response.status, await response.json().catch(() => null));
  });
  $("as-file").value = "";
});
$("as-pause").addEventListener("click", () => {
  assistant.paused = !assistant.paused;
  $("as-pause").textContent = assistant.paused ? "Resume" : "Pause";
  if (!assistant.paused) {
    for (const e of assistant.held) assistant.append(e);
    assistant.held = [];
  }
});
$("as-clear").addEventListener("click", () => {
  assistant.entries = [];
  assistant.held = [];
  $("as-log").replaceChildren();
  assistant.act(() => call("POST", `/api/assist/sessions/${assistant.current}/clear`));
});
$("as-save").addEventListener("click", () => {
  const lines = assistant.entries.map((e) => {
    const when = new Date(e.at).toISOString();
    const mark = e.kind === "in" ? "<" : e.kind === "out" ? ">" : "--";
    return `${when} ${mark} ${e.peer ? `#${e.peer_id} ${e.peer} ` : ""}${assistant.text(e)}`;
  });
  const blob = new Blob([lines.join("\n") + "\n"], { type: "text/plain" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `sockit-session-${assistant.current}.log`;
  a.click();
  URL.revokeObjectURL(a.href);
});
for (const id of ["as-view", "as-encoding", "as-times", "as-dir", "as-filter"]) {
  $(id).addEventListener(id === "as-filter" ? "input" : "change", () => assistant.redraw());
}
$("as-rules-apply").addEventListener("click", async () => {
  $("as-rules-error").textContent = "";
  try {
    const r = await call("PUT", `/api/assist/sessions/${assistant.current}/rules`, {
      toml: $("as-rules").value,
      on: $("as-rules-on").checked,
    });
    $("as-rules-state").textContent = r.on ? "(on)" : "";
  } catch (e) {
    $("as-rules-error").textContent = e.message;
  }
});
$("as-rules-file").addEventListener("change", async () => {
  const file = $("as-rules-file").files[0];
  if (file) $("as-rules").value = await file.text();
  $("as-rules-file").value = "";
});
