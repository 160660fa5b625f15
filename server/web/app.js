// Parley's web chat: the protocol of docs/PROTOCOL.md over WebSocket, one
// JSON object per text message. Everything users send is shown with
// textContent, never as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const LOBBY = "lobby";
  const KEEP = 1000; // messages kept per view
  const PAGE = 50;

  const state = {
    ws: null, nick: "", wantNick: "", token: "", resume: "",
    rooms: new Map(), // name -> view
    dms: new Map(), // peer nick -> view
    current: { kind: "room", name: LOBBY },
    refs: new Map(), nextRef: 1,
    everWelcomed: false, quitting: false, attempt: 0, holdUntil: 0, timer: 0,
    dmEpoch: "", dmSeq: 0, trace: [],
  };

  function view(kind, name) {
    const map = kind === "room" ? state.rooms : state.dms;
    let v = map.get(name);
    if (!v) {
      v = { kind, name, msgs: [], seqs: new Set(), unread: 0, epoch: "", seq: 0, members: new Set(), more: true, loaded: false };
      map.set(name, v);
    }
    return v;
  }
  const currentView = () => view(state.current.kind, state.current.name);

  // Connection.

  function url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/ws";
  }

  function connect() {
    clearTimeout(state.timer);
    setStatus(state.everWelcomed ? "reconnecting" : "connecting");
    const ws = new WebSocket(url());
    state.ws = ws;
    ws.onopen = () => sendLogin();
    ws.onmessage = (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      trace("in", ev);
      handle(ev);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      for (const [, p] of state.refs) p.reject(new Error("disconnected"));
      state.refs.clear();
      if (state.quitting || !state.everWelcomed) {
        setStatus("disconnected");
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    state.attempt++;
    const max = Math.min(30000, 500 * 2 ** Math.min(state.attempt, 6));
    let delay = max / 2 + Math.random() * max / 2; // the upper half, for jitter
    delay = Math.max(delay, state.holdUntil - Date.now());
    setStatus("reconnecting", Math.ceil(delay / 1000));
    state.timer = setTimeout(connect, delay);
  }

  function sendLogin() {
    const login = { type: "login", ref: "login" };
    if (state.token) login.token = state.token;
    else login.nick = state.wantNick;
    if (state.resume) login.resume = state.resume;
    const lobby = state.rooms.get(LOBBY);
    if (lobby && lobby.epoch) { login.since = lobby.seq; login.epoch = lobby.epoch; }
    send(login);
  }

  function send(obj) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    trace("out", obj);
    state.ws.send(JSON.stringify(obj));
    return true;
  }

  // trace keeps the last frames each way (types and seqs, no bodies), for
  // parleyDebug.
  function trace(dir, f) {
    state.trace.push(dir + " " + f.type + (f.room ? " " + f.room : "") + (f.seq ? " seq " + f.seq : "") + (f.since !== undefined ? " since " + f.since : "") + (f.code ? " " + f.code : ""));
    if (state.trace.length > 200) state.trace.shift();
  }

  // request sends obj with a fresh ref and resolves with its answer.
  function request(obj) {
    return new Promise((resolve, reject) => {
      const ref = "r" + state.nextRef++;
      obj.ref = ref;
      if (!send(obj)) { reject(new Error("not connected")); return; }
      state.refs.set(ref, { resolve, reject });
    });
  }

  function answer(ev) {
    const p = ev.ref && state.refs.get(ev.ref);
    if (!p) return false;
    state.refs.delete(ev.ref);
    if (ev.type === "error") p.reject(Object.assign(new Error(ev.message), { code: ev.code }));
    else p.resolve(ev);
    return true;
  }

  // Frames from the server.

  function handle(ev) {
    switch (ev.type) {
      case "welcome": return welcomed(ev);
      case "msg": return ev.room ? roomMsg(ev) : dmMsg(ev, false);
      case "joined": return memberChange(ev.room, ev.nick, true, ev.nick + " joined " + ev.room);
      case "left": return memberChange(ev.room, ev.nick, false, ev.nick + " left " + ev.room + " (" + ev.reason + ")");
      case "presence": return notice(view("room", ev.room), ev.room + ": " + ev.count + " members (+" + ev.joined + " joined, -" + ev.left + " left)");
      case "gap": return fillGap(ev);
      case "recovered":
        if (!ev.recovered) notice(view("room", ev.room), "messages sent in " + ev.room + " while you were away could not all be recovered", "lost");
        return;
      case "ping": send({ type: "pong" }); return;
      case "bye":
        state.lastBye = ev.reason;
        notice(currentView(), "the server said bye (" + ev.reason + ")");
        if (ev.reason === "quit") state.quitting = true;
        return;
      case "error":
        if (ev.ref === "login") return loginRefused(ev);
        if (!answer(ev)) notice(currentView(), ev.code + ": " + ev.message, "lost");
        return;
      default:
        answer(ev);
    }
  }

  function welcomed(ev) {
    const first = !state.everWelcomed;
    state.everWelcomed = true;
    state.attempt = 0;
    state.nick = ev.nick;
    state.resume = ev.resume || "";
    const lobby = view("room", LOBBY);
    if (lobby.epoch !== ev.epoch) { lobby.epoch = ev.epoch || ""; lobby.seq = ev.seq || 0; }
    setStatus("connected");
    $("login").hidden = true;
    $("chat").hidden = false;
    if (first) {
      notice(lobby, "welcome, " + ev.nick + ": " + (ev.online ? ev.online + " others online" : "nobody else is online") + ". Type /help for commands.");
      loadHistory(lobby);
      refreshMembers(lobby);
    } else {
      rejoin();
    }
    catchUpDMs(ev);
    render();
  }

  function loginRefused(ev) {
    state.everWelcomed = false;
    state.quitting = true;
    if (state.ws) state.ws.close();
    $("login-error").textContent = ev.code + ": " + ev.message;
    $("login").hidden = false;
    $("chat").hidden = true;
    setStatus("disconnected");
  }

  // rejoin restores the rooms after a reconnect, each from its last seq.
  function rejoin() {
    for (const [name, v] of state.rooms) {
      if (name === LOBBY) { refreshMembers(v); continue; }
      const j = { type: "join", room: name };
      if (v.epoch) { j.since = v.seq; j.epoch = v.epoch; }
      request(j).then((ack) => { if (ack.epoch !== v.epoch) { v.epoch = ack.epoch; v.seq = ack.seq; } refreshMembers(v); }, () => {});
    }
  }

  function remember(v, entry) {
    if (entry.seq) {
      if (v.seqs.has(entry.seq)) return false;
      v.seqs.add(entry.seq);
    }
    v.msgs.push(entry);
    if (entry.seq) v.msgs.sort((a, b) => (a.seq || Infinity) - (b.seq || Infinity) || a.n - b.n);
    while (v.msgs.length > KEEP) { const old = v.msgs.shift(); if (old.seq) v.seqs.delete(old.seq); }
    return true;
  }

  let counter = 0;
  function entry(kind, fields) { return Object.assign({ kind, n: counter++, at: Date.now() }, fields); }

  function roomMsg(ev, filled) {
    const v = view("room", ev.room);
    if (ev.seq > v.seq) v.seq = ev.seq;
    const isNew = remember(v, entry("msg", { nick: ev.from, text: ev.body, seq: ev.seq, at: ev.ts || Date.now(), mine: ev.from === state.nick }));
    if (isNew && !filled) bump(v);
  }

  function dmMsg(ev, filled) {
    if (ev.seq > state.dmSeq) state.dmSeq = ev.seq;
    const peer = ev.from === state.nick ? ev.to : ev.from;
    const v = view("dm", peer);
    const isNew = remember(v, entry("msg", { nick: ev.from, text: ev.body, seq: ev.seq || 0, at: ev.ts || Date.now(), mine: ev.from === state.nick }));
    if (isNew && !filled) bump(v);
  }

  function bump(v) {
    if (!(state.current.kind === v.kind && state.current.name === v.name) || document.hidden) v.unread++;
    render();
  }

  function notice(v, text, cls) {
    remember(v, entry("notice", { text, cls }));
    render();
  }

  function memberChange(room, nick, joined, text) {
    const v = view("room", room);
    if (joined) v.members.add(nick); else v.members.delete(nick);
    notice(v, text);
  }

  // catchUpDMs pages the direct messages missed while away, up to the
  // new welcome's dm_seq (live ones come after it).
  async function catchUpDMs(ev) {
    if (!ev.dm_epoch) return;
    if (state.dmEpoch !== ev.dm_epoch) { state.dmEpoch = ev.dm_epoch; state.dmSeq = ev.dm_seq || 0; return; }
    let since = state.dmSeq;
    const last = ev.dm_seq || 0;
    while (since < last) {
      const page = await request({ type: "history", dm: true, since, limit: 100 }).catch(() => null);
      if (!page || !page.msgs.length) return;
      for (const m of page.msgs) { if (m.seq > last) return; dmMsg(m, true); since = m.seq; }
    }
    render();
  }

  async function fillGap(gap) {
    const v = view("room", gap.room);
    let since = gap.first - 1;
    while (since < gap.last) {
      const page = await request({ type: "history", room: gap.room, since, limit: 100 }).catch(() => null);
      if (!page || !page.msgs.length) break;
      for (const m of page.msgs) { if (m.seq > gap.last) break; roomMsg(m, true); since = m.seq; }
    }
    render();
  }

  async function loadHistory(v) {
    if (v.kind !== "room" || !v.more || v.loading) return;
    v.loading = true;
    const oldest = v.msgs.find((m) => m.seq);
    const h = { type: "history", room: v.name, limit: PAGE };
    if (oldest) h.before = oldest.seq;
    const page = await request(h).catch(() => null);
    v.loading = false;
    v.loaded = true;
    if (!page) return;
    v.more = page.more;
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    for (const m of page.msgs) roomMsg(m, true);
    render();
    if (oldest) list.scrollTop = list.scrollHeight - fromBottom; // keep the reader's place
  }

  async function refreshMembers(v) {
    if (v.kind !== "room") return;
    const users = await request({ type: "who", room: v.name }).catch(() => null);
    if (!users) return;
    v.members = new Set(users.nicks);
    v.count = users.count;
    render();
  }

  // What the user types.

  const HELP = "/join room · /leave [room] · /dm nick text · /who [room] · /quit; anything else is said where you are";

  async function submit(text) {
    text = text.trim();
    if (!text) return;
    const v = currentView();
    try {
      if (!text.startsWith("/")) return await say(v, text);
      const [cmd, ...rest] = text.split(/\s+/);
      const arg = rest.join(" ");
      switch (cmd) {
        case "/join": return await join(arg);
        case "/leave": return await leave(arg || (v.kind === "room" ? v.name : ""));
        case "/dm": { const [to, ...body] = rest; openDM(to); return await say(view("dm", to), body.join(" ")); }
        case "/who": {
          const room = arg || (v.kind === "room" ? v.name : "");
          const users = await request(room && room !== "*" ? { type: "who", room } : { type: "who" });
          return notice(v, (room && room !== "*" ? room : "online") + " (" + users.count + "): " + users.nicks.join(", ") + (users.more ? ", …" : ""));
        }
        case "/quit": state.quitting = true; send({ type: "quit" }); return;
        case "/help": return notice(v, HELP);
      }
      notice(v, "unknown command " + cmd + ": " + HELP);
    } catch (err) {
      notice(v, (err.code ? err.code + ": " : "") + err.message, "lost");
    }
  }

  async function say(v, body) {
    if (!body) return;
    const id = "w" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    if (v.kind === "room") {
      const ack = await request({ type: "say", room: v.name, body, id });
      roomMsg({ room: v.name, from: state.nick, body, seq: ack.seq, ts: Date.now() }, true);
    } else {
      const ack = await request({ type: "dm", to: v.name, body });
      dmMsg({ from: state.nick, to: v.name, body, seq: ack.seq, ts: Date.now() }, true);
    }
    render();
  }

  async function join(name) {
    if (!name) return;
    const ack = await request({ type: "join", room: name });
    const display = name.toLowerCase();
    const v = view("room", display);
    if (ack.epoch && ack.epoch !== v.epoch) { v.epoch = ack.epoch; v.seq = ack.seq || 0; }
    select("room", display);
    loadHistory(v);
    refreshMembers(v);
  }

  async function leave(name) {
    if (!name) return;
    await request({ type: "leave", room: name });
    state.rooms.delete(name);
    if (state.current.kind === "room" && state.current.name === name) select("room", LOBBY);
    render();
  }

  function openDM(nick) {
    if (!nick) return;
    view("dm", nick);
    select("dm", nick);
  }

  function select(kind, name) {
    state.current = { kind, name };
    const v = view(kind, name);
    v.unread = 0;
    $("side").classList.remove("open");
    render(true);
    if (kind === "room" && !v.loaded) loadHistory(v);
  }

  // Drawing.

  function setStatus(s, secs) {
    const el = $("status");
    el.dataset.state = s;
    el.textContent = s === "reconnecting" && secs ? "reconnecting in " + secs + " s" : s;
  }

  function time(at) {
    const d = new Date(at);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function li(text, cls) {
    const el = document.createElement("li");
    if (text !== undefined) el.textContent = text;
    if (cls) el.className = cls;
    return el;
  }

  function sideList(ul, map, kind, label) {
    ul.replaceChildren();
    for (const [name, v] of map) {
      const el = li(undefined, state.current.kind === kind && state.current.name === name ? "current" : "");
      el.dataset.name = name;
      const title = document.createElement("span");
      title.textContent = label(name);
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = v.unread ? String(v.unread) : "";
      el.append(title, badge);
      if (kind === "room" && name !== LOBBY) {
        const x = document.createElement("button");
        x.className = "leave"; x.type = "button"; x.textContent = "×"; x.title = "leave " + name;
        x.onclick = (e) => { e.stopPropagation(); submit("/leave " + name); };
        el.append(x);
      }
      el.onclick = () => select(kind, name);
      ul.append(el);
    }
  }

  function render(scrollToEnd) {
    const v = currentView();
    $("title").textContent = (v.kind === "room" ? "#" + v.name : "@" + v.name) + " · " + state.nick;
    sideList($("rooms"), state.rooms, "room", (n) => "#" + n);
    sideList($("dms"), state.dms, "dm", (n) => "@" + n);
    const members = $("members");
    members.replaceChildren(...[...v.members].sort().map((n) => li(n)));
    $("member-count").textContent = v.kind === "room" ? "(" + (v.count ?? v.members.size) + ")" : "";
    const list = $("messages");
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const items = [];
    if (v.kind === "room" && v.more && v.loaded) items.push(li("scroll up for older messages", "more"));
    for (const m of v.msgs) {
      const el = li(undefined, m.kind === "notice" ? "notice " + (m.cls || "") : m.mine ? "msg mine" : "msg");
      if (m.seq) el.dataset.seq = String(m.seq);
      const t = document.createElement("span");
      t.className = "time"; t.textContent = time(m.at);
      el.append(t);
      if (m.kind === "msg") {
        const n = document.createElement("span");
        n.className = "nick"; n.textContent = m.nick;
        el.append(n);
      }
      el.append(document.createTextNode(m.text));
      items.push(el);
    }
    list.replaceChildren(...items);
    if (scrollToEnd || atEnd) list.scrollTop = list.scrollHeight;
  }

  // Wiring.

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    state.wantNick = $("login-nick").value.trim();
    state.token = $("login-token").value.trim();
    if (!state.wantNick && !state.token) { $("login-error").textContent = "a nick or a token, please"; return; }
    $("login-error").textContent = "";
    state.quitting = false;
    connect();
  });
  $("compose").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("input");
    const text = input.value;
    input.value = "";
    submit(text);
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("compose").requestSubmit(); }
  });
  $("join-form").addEventListener("submit", (e) => { e.preventDefault(); const r = $("join-room"); submit("/join " + r.value); r.value = ""; });
  $("dm-form").addEventListener("submit", (e) => { e.preventDefault(); const n = $("dm-nick"); openDM(n.value.trim()); n.value = ""; });
  $("menu").addEventListener("click", () => $("side").classList.toggle("open"));
  $("messages").addEventListener("scroll", () => { if ($("messages").scrollTop === 0) loadHistory(currentView()); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { currentView().unread = 0; render(); } });

  // For tests and for trying resume by hand: drop the connection as a
  // network would, and hold the reconnect for ms.
  window.parleyDebug = {
    drop(ms) { state.holdUntil = Date.now() + (ms || 0); if (state.ws) state.ws.close(); },
    state,
  };
})();
