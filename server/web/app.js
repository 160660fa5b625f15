// Parley's web chat: the protocol of docs/PROTOCOL.md over WebSocket, one
// JSON object per text message. Everything users send is shown with
// textContent and DOM nodes, never as HTML.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const LOBBY = "lobby";
  const KEEP = 1000; // messages kept per view
  const PAGE = 50;
  const RECALL = 50; // lines Up recalls
  const BURST_MS = 30000; // joins and leaves this close together share one line
  const SAVED = "parley.session"; // sessionStorage: this tab's session, for a reload

  const state = {
    ws: null, nick: "", wantNick: "", token: "", resume: "",
    info: { auth: "off", max_body: 4096 },
    rooms: new Map(), // name -> view
    dms: new Map(), // peer nick -> view
    current: { kind: "room", name: LOBBY },
    refs: new Map(), nextRef: 1,
    everWelcomed: false, restoring: false, quitting: false, attempt: 0, holdUntil: 0, timer: 0,
    dmEpoch: "", dmSeq: 0, trace: [], sent: [], recall: -1, draft: "",
    account: false, composing: null, // {kind: "reply"|"edit", v, e}: what the next line does
  };

  function view(kind, name) {
    const map = kind === "room" ? state.rooms : state.dms;
    let v = map.get(name);
    if (!v) {
      v = { kind, name, msgs: [], seqs: new Set(), unread: 0, mentions: 0, epoch: "", seq: 0, members: new Set(), roles: {}, topic: "", count: 0, complete: false, more: true, loaded: false };
      map.set(name, v);
    }
    return v;
  }
  const currentView = () => view(state.current.kind, state.current.name);
  const isCurrent = (v) => state.current.kind === v.kind && state.current.name === v.name;

  // The session survives a reload: this tab keeps its login, resume token
  // and where it is in each room in sessionStorage (gone with the tab; a
  // token is never written to localStorage), and a reload logs in with
  // them exactly as a reconnect does.

  function save() {
    if (!state.everWelcomed || state.quitting) return;
    const rooms = {};
    for (const [name, v] of state.rooms) rooms[name] = { epoch: v.epoch, seq: v.seq };
    const s = { nick: state.wantNick, token: state.token, resume: state.resume, rooms, dmEpoch: state.dmEpoch, dmSeq: state.dmSeq, dms: [...state.dms.keys()], current: state.current, sent: state.sent };
    try { sessionStorage.setItem(SAVED, JSON.stringify(s)); } catch { /* private mode: no reload resume */ }
  }

  // saveSoon saves within a second: render runs for every message, and
  // the session need not be written that often (pagehide saves at once).
  let saveTimer = 0;
  function saveSoon() {
    if (!saveTimer) saveTimer = setTimeout(() => { saveTimer = 0; save(); }, 1000);
  }

  function forget() { clearTimeout(saveTimer); saveTimer = 0; try { sessionStorage.removeItem(SAVED); } catch { /* nothing saved */ } }

  function restore() {
    let s;
    try { s = JSON.parse(sessionStorage.getItem(SAVED) || "null"); } catch { s = null; }
    if (!s || (!s.nick && !s.token)) return false;
    state.wantNick = s.nick || ""; state.token = s.token || ""; state.resume = s.resume || "";
    for (const [name, m] of Object.entries(s.rooms || {})) { const v = view("room", name); v.epoch = m.epoch || ""; v.seq = m.seq || 0; }
    for (const peer of s.dms || []) view("dm", peer);
    state.dmEpoch = s.dmEpoch || ""; state.dmSeq = s.dmSeq || 0;
    if (s.current && view(s.current.kind, s.current.name)) state.current = s.current;
    state.sent = Array.isArray(s.sent) ? s.sent.slice(-RECALL) : [];
    state.restoring = true;
    return true;
  }

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
      for (const [, p] of state.refs) p.reject(Object.assign(new Error("disconnected"), { code: "disconnected" }));
      state.refs.clear();
      if (state.quitting || (!state.everWelcomed && !state.restoring)) {
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
    if (!connected()) return false;
    trace("out", obj);
    state.ws.send(JSON.stringify(obj));
    return true;
  }
  const connected = () => state.ws && state.ws.readyState === WebSocket.OPEN;

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
      if (!send(obj)) { reject(Object.assign(new Error("not connected"), { code: "offline" })); return; }
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

  // human words an error for people; the code stays in the title.
  const HUMAN = {
    nick_taken: "That nick is in use. Pick another (a nick of yours that just dropped is held for its resume for a few seconds).",
    bad_nick: "That nick is not allowed: 1 to 32 letters, digits, _ - or . in one script.",
    bad_token: "The token was refused: check that it is whole and signed for this server.",
    token_expired: "The token has expired: get a new one.",
    too_many_sessions: "This account has too many sessions open: close one and try again.",
    rate_limited: "Too fast: wait a moment and send again.",
    body_too_large: "Too long to send.",
    no_such_user: "Nobody of that name is online.",
    not_in_room: "You are not in that room.",
    bad_room: "That is not a valid room name: letters, digits, _ - or . in one script.",
    too_many_rooms: "You are in as many rooms as the server allows: leave one first.",
    room_limit: "The server has as many rooms as it allows.",
    not_stored: "Delivered, but the server could not store it.",
    unavailable: "The server could not confirm it (it may have arrived).",
    offline: "Not connected: it was not sent.",
    forbidden: "You do not hold the role that takes: ask the room's owner or an operator.",
    banned: "You are banned from that room.",
    muted: "You are muted in this room: you can read, not say.",
    invite_only: "That room is private: it takes invitations only.",
    disconnected: "The connection dropped before the server answered.",
  };
  const human = (err) => HUMAN[err.code] || (err.code ? err.code + ": " : "") + err.message;

  // Frames from the server.

  function handle(ev) {
    switch (ev.type) {
      case "welcome": return welcomed(ev);
      case "msg": return ev.room ? roomMsg(ev, "live") : dmMsg(ev, "live");
      case "joined": return memberChange(ev.room, ev.nick, true);
      case "left":
        if (ev.nick === state.nick) return removed(ev);
        return memberChange(ev.room, ev.nick, false, ev.reason);
      case "mod": return moderated(ev);
      case "typing": return typingNotice(ev);
      case "topic": return topicChanged(ev);
      case "edited": case "deleted": case "reaction": return amended(ev);
      case "marks": return marked(ev);
      case "presence": { const v = view("room", ev.room); v.count = ev.count; v.complete = false; return notice(v, ev.room + ": " + ev.count + " members (+" + ev.joined + " joined, -" + ev.left + " left)"); }
      case "gap": return fillGap(ev);
      case "recovered":
        if (!ev.recovered) notice(view("room", ev.room), "messages sent in " + ev.room + " while you were away could not all be recovered", "lost");
        return;
      case "ping": send({ type: "pong" }); return;
      case "bye":
        notice(currentView(), "the server said bye (" + ev.reason + (ev.message ? ": " + ev.message : "") + ")");
        // After quit, or when the application ended the account's
        // sessions, reconnecting would undo what was asked.
        if (ev.reason === "quit" || ev.reason === "disconnected") state.quitting = true;
        return;
      case "error":
        if (ev.ref === "login") return loginRefused(ev);
        if (!answer(ev)) notice(currentView(), human(ev), "lost");
        return;
      default:
        answer(ev);
    }
  }

  function welcomed(ev) {
    const first = !state.everWelcomed;
    const restored = first && state.restoring;
    state.everWelcomed = true;
    state.restoring = false;
    state.attempt = 0;
    state.nick = ev.nick;
    state.resume = ev.resume || "";
    state.account = !!ev.dm_epoch;
    const lobby = view("room", LOBBY);
    if (lobby.epoch !== ev.epoch) { lobby.epoch = ev.epoch || ""; lobby.seq = ev.seq || 0; }
    setStatus("connected");
    $("login").hidden = true;
    $("chat").hidden = false;
    if (first) {
      notice(lobby, "welcome, " + ev.nick + ": " + (ev.online ? ev.online + (ev.online === 1 ? " other user" : " other users") + " online" : "nobody else is online") + ". Type /help for commands.");
      loadHistory(lobby);
      refreshMembers(lobby);
      listRooms();
    }
    if (!first || restored) rejoin(restored);
    catchUpDMs(ev);
    save();
    render(true);
  }

  function loginRefused(ev) {
    // A reload or a reconnect can log in before the server has seen the
    // old connection close: its nick is still online, and the resume
    // takes it once the server has. Try again a few times.
    if ((state.everWelcomed || state.restoring) && ev.code === "nick_taken" && state.attempt < 8) {
      if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
      scheduleReconnect();
      return;
    }
    state.everWelcomed = false;
    state.restoring = false;
    state.quitting = true;
    forget();
    if (state.ws) state.ws.close();
    $("login-error").textContent = human(ev);
    $("login-error").title = ev.code + ": " + ev.message;
    $("login").hidden = false;
    $("chat").hidden = true;
    setStatus("disconnected");
  }

  // rejoin restores the rooms after a reconnect or a reload, each from its
  // last seq; after a reload the views are empty, and show their latest
  // page again.
  function rejoin(reloaded) {
    for (const [name, v] of state.rooms) {
      if (name === LOBBY) { refreshMembers(v); continue; }
      const j = { type: "join", room: name };
      if (v.epoch) { j.since = v.seq; j.epoch = v.epoch; }
      request(j).then((ack) => {
        if (ack.epoch !== v.epoch) { v.epoch = ack.epoch; v.seq = ack.seq; }
        refreshMembers(v);
        if (reloaded) loadHistory(v);
      }, (err) => notice(v, "could not rejoin " + name + ": " + human(err), "lost"));
    }
  }

  // place puts entry into v's list: a message by seq among the messages
  // (a history page above, a late one in its place), anything else where
  // it arrived.
  function place(v, entry, older) {
    if (entry.seq) {
      if (v.seqs.has(entry.seq)) return false;
      v.seqs.add(entry.seq);
      let i = v.msgs.findIndex((m) => m.seq && m.seq > entry.seq);
      if (i < 0 && older) {
        const last = v.msgs.findLastIndex((m) => m.seq && m.seq < entry.seq);
        i = last + 1;
      }
      if (i >= 0) v.msgs.splice(i, 0, entry); else v.msgs.push(entry);
    } else {
      v.msgs.push(entry);
    }
    while (v.msgs.length > KEEP) { const old = v.msgs.shift(); if (old.seq) v.seqs.delete(old.seq); }
    return true;
  }

  let counter = 0;
  function entry(kind, fields) { return Object.assign({ kind, n: counter++, at: Date.now() }, fields); }

  // mentions reports whether text names nick (or a guest's nick without
  // its ~) as a word; anywhere for names that are not ASCII words.
  function mentions(text, nick) {
    if (!nick) return false;
    const lower = text.toLowerCase();
    for (const n of new Set([nick.toLowerCase(), nick.replace(/^~/, "").toLowerCase()])) {
      if (!n) continue;
      const word = /^[\w-]/.test(n) ? "(^|[^\\w-])" : "";
      const end = /[\w-]$/.test(n) ? "($|[^\\w-])" : "";
      if (new RegExp(word + n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + end).test(lower)) return true;
    }
    return false;
  }

  // ownLine finds the pending or failed line of this tab's say id.
  const ownLine = (v, id) => id && v.msgs.find((m) => m.id === id && m.mine && !m.seq);

  // how: "live" (arrived now), "older" (a history page), "fill" (missed
  // messages fetched late).
  // Typing: who types where, each until TYPING_SHOWN after its notice or
  // until its message; this user's own typing goes out at most once per
  // TYPING_EVERY (the server's limit too). Views: the room's, or the DM's
  // with the typer.
  const TYPING_SHOWN = 5000, TYPING_EVERY = 3000;
  let typedAt = 0, typedWhere = "";
  function typingNotice(ev) {
    const v = ev.room ? view("room", ev.room) : view("dm", ev.nick);
    v.typing = v.typing || new Map();
    v.typing.set(ev.nick, Date.now() + TYPING_SHOWN);
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOWN + 50);
  }
  function stoppedTyping(v, nick) { if (v.typing && v.typing.delete(nick)) renderTyping(); }
  function renderTyping() {
    const v = currentView(), now = Date.now();
    const names = v.typing ? [...v.typing].filter(([, until]) => until > now).map(([n]) => n).sort() : [];
    $("typing").textContent = !names.length ? "" : names.length === 1 ? names[0] + " is typing…"
      : names.length <= 3 ? names.join(", ") + " are typing…" : "several people are typing…";
  }
  function typed() {
    const v = currentView(), text = $("input").value, where = v.kind + ":" + v.name;
    if (!text || text.startsWith("/") || (where === typedWhere && Date.now() - typedAt < TYPING_EVERY)) return;
    typedAt = Date.now(); typedWhere = where;
    send(v.kind === "room" ? { type: "typing", room: v.name } : { type: "typing", to: v.name });
  }

  function roomMsg(ev, how) {
    const v = view("room", ev.room);
    if (how === "live") stoppedTyping(v, ev.from);
    if (ev.seq > v.seq) v.seq = ev.seq;
    // A message the application posted (api) is nobody's here, whatever
    // name it carries.
    const mine = ev.from === state.nick && !ev.api;
    const own = mine && ownLine(v, ev.id);
    if (own) { confirm(v, own, ev.seq); render(); return; }
    const mention = !mine && (ev.mentions ? ev.mentions.some((n) => n.toLowerCase() === state.nick.toLowerCase()) : mentions(ev.body, state.nick));
    const e = entry("msg", { nick: ev.from, text: ev.body || "", seq: ev.seq, at: ev.ts || Date.now(), mine, mention,
      replyTo: ev.reply_to || 0, edited: !!ev.edited, deleted: !!ev.deleted, reactions: ev.reactions || [], app: !!ev.api });
    if (place(v, e, how === "older") && how === "live") bump(v, e);
    else render();
    if (how === "live" && isCurrent(v)) markSoon(v);
  }

  // Edits, deletes and reactions (docs/PROTOCOL.md): an event with a seq
  // of its own that changes the message it names. The server sends it to
  // everyone but its sender, who applies its own on the ack.
  function amended(ev) {
    if (!ev.room) return dmAmended(ev);
    const v = view("room", ev.room);
    if (ev.seq > v.seq) v.seq = ev.seq;
    const e = v.msgs.find((m) => m.kind === "msg" && m.seq === ev.of);
    if (!e) return;
    amend(e, ev.type, ev.body, ev.emoji, ev.remove, ev.from === state.nick);
    render();
  }
  // A direct message's edit or delete names it by the reader's own seq.
  function dmAmended(ev) {
    if (ev.seq > state.dmSeq) state.dmSeq = ev.seq;
    const peer = ev.from === state.nick ? ev.to : ev.from;
    const e = state.dms.has(peer) && view("dm", peer).msgs.find((m) => m.kind === "msg" && m.seq === ev.of);
    if (e) { amend(e, ev.type, ev.body); render(); }
  }
  function amend(e, type, body, emoji, remove, mine) {
    if (type === "edited") { e.text = body; e.edited = true; }
    else if (type === "deleted") { e.deleted = true; e.text = ""; e.reactions = []; }
    else {
      const r = e.reactions.find((x) => x.emoji === emoji);
      if (remove && r) { r.count--; if (mine) r.me = false; if (r.count <= 0) e.reactions.splice(e.reactions.indexOf(r), 1); }
      else if (!remove && r) { r.count++; if (mine) r.me = true; }
      else if (!remove) e.reactions.push({ emoji, count: 1, me: mine });
    }
  }
  async function act(v, e, type, extra) {
    try {
      const where = v.kind === "dm" ? { dm: true } : { room: v.name };
      const ack = await request(Object.assign({ type, seq: e.seq }, where, extra));
      if (ack.seq) {
        if (v.kind === "dm") state.dmSeq = Math.max(state.dmSeq, ack.seq);
        else if (ack.seq > v.seq) v.seq = ack.seq;
        amend(e, type === "edit" ? "edited" : type === "delete" ? "deleted" : "reaction", extra.body, extra.emoji, extra.remove, true);
      }
      render();
      return true;
    } catch (err) {
      notice(v, human(err), "lost");
      return false;
    }
  }
  const react = (v, e, emoji) => act(v, e, "react", { emoji, remove: !!(e.reactions.find((r) => r.emoji === emoji) || {}).me });

  // Read markers: the server keeps, per account, where each room was
  // read; the login's marks frame gives the unread counts and the line
  // "new since you left"; reading a room moves its marker.
  // A session's first marks frame names the rooms its account reads: a
  // tab that did not have them (a new device) joins them.
  function marked(ev) {
    for (const m of ev.marks || []) {
      if (m.dm) continue;
      if (state.rooms.has(m.room)) { applyMark(view("room", m.room), m); continue; }
      request({ type: "join", room: m.room }).then((ack) => {
        const v = view("room", m.room);
        if (ack.epoch) { v.epoch = ack.epoch; v.seq = ack.seq || 0; }
        applyMark(v, m);
        refreshMembers(v);
      }, () => { /* private or banned since: not rejoined */ });
    }
    render();
  }
  function applyMark(v, m) {
    v.marker = Math.max(v.marker || 0, m.seq);
    if (v.since === undefined) v.since = m.seq; // the separator stays where this session found it
    if (isCurrent(v)) return;
    if (m.unread) { v.unread = m.unread; v.mentions = m.mentions; }
    else if (m.seq >= v.seq) { v.unread = 0; v.mentions = 0; } // read on another device
    render();
  }
  let markTimer = 0;
  function markSoon(v) {
    if (!state.account || v.kind !== "room" || document.hidden) return;
    clearTimeout(markTimer);
    markTimer = setTimeout(() => {
      const last = v.msgs.findLast((m) => m.seq);
      const seq = Math.max(v.seq, last ? last.seq : 0);
      if (seq > (v.marker || 0)) { v.marker = seq; send({ type: "mark", room: v.name, seq }); }
    }, 1000);
  }

  function compose(kind, v, e) {
    state.composing = { kind, v, e };
    $("composing").hidden = false;
    $("composing-text").textContent = (kind === "reply" ? "replying to " + e.nick + ": " : "editing: ") + e.text.slice(0, 80);
    if (kind === "edit") $("input").value = e.text;
    $("input").focus();
  }
  function stopComposing() { state.composing = null; $("composing").hidden = true; }

  function dmMsg(ev, how) {
    if (ev.seq > state.dmSeq) state.dmSeq = ev.seq;
    const mine = ev.from === state.nick && !ev.api;
    const peer = mine ? ev.to : ev.from;
    const v = view("dm", peer);
    if (how === "live" && !mine) stoppedTyping(v, ev.from);
    const e = entry("msg", { nick: ev.from, text: ev.body || "", seq: ev.seq || 0, at: ev.ts || Date.now(), mine, mention: !mine, edited: !!ev.edited, deleted: !!ev.deleted, reactions: [], app: !!ev.api });
    if (place(v, e, how === "older") && how === "live") bump(v, e);
    else render();
  }

  // bump counts a new message as unread unless it is in plain sight, and
  // tells of a DM or a mention while the tab is hidden.
  function bump(v, e) {
    if (!isCurrent(v) || document.hidden) {
      v.unread++;
      if (e.mention) v.mentions++;
    }
    if (!isCurrent(v) && $("messages").scrollHeight) { /* the side list shows it */ }
    if (isCurrent(v) && !atEnd()) state.newBelow = true;
    if (e.mention && document.hidden && window.Notification && Notification.permission === "granted") {
      try {
        new Notification((v.kind === "dm" ? "@" : "#" + v.name + " · ") + e.nick, { body: e.text.slice(0, 200), tag: "parley-" + v.kind + "-" + v.name });
      } catch { /* some browsers allow notifications only from a service worker */ }
    }
    render();
  }

  function notice(v, text, cls) {
    place(v, entry("notice", { text, cls }));
    render();
  }

  // memberChange keeps the member list and count true, and folds a burst
  // of joins and leaves into one line.
  function memberChange(room, nick, joined, reason) {
    const v = view("room", room);
    if (joined) {
      if (!v.members.has(nick)) { v.members.add(nick); v.count++; }
    } else if (v.members.delete(nick) || !v.complete) {
      v.count = Math.max(0, v.count - 1);
    }
    let last = v.msgs[v.msgs.length - 1];
    if (!last || last.kind !== "members" || Date.now() - last.at > BURST_MS) {
      last = entry("members", { joined: [], left: [] });
      place(v, last);
    }
    const from = joined ? last.left : last.joined;
    const to = joined ? last.joined : last.left;
    const i = from.indexOf(nick);
    if (i >= 0 && joined) from.splice(i, 1); // left and came back: just here
    if (!to.includes(nick) && !(i >= 0 && joined)) to.push(joined || !reason || reason === "quit" ? nick : nick + " (" + reason + ")");
    last.text = summary(last);
    render();
  }

  // removed: an operator kicked or banned this session from a room.
  function removed(ev) {
    state.rooms.delete(ev.room);
    if (state.current.kind === "room" && state.current.name === ev.room) select("room", LOBBY);
    notice(view("room", LOBBY), "you were removed from " + ev.room + " (" + ev.reason + ")", "lost");
  }

  const MOD_WORDS = { kick: "kicked", ban: "banned", unban: "unbanned", mute: "muted", unmute: "unmuted", op: "made an operator", deop: "no longer an operator", invite: "invited", uninvite: "uninvited" };
  function moderated(ev) {
    const v = view("room", ev.room);
    let text;
    if (ev.action === "private") text = ev.by + " made " + ev.room + " private: invitations only";
    else if (ev.action === "public") text = ev.by + " opened " + ev.room + " to everyone";
    else text = ev.nick + " " + (MOD_WORDS[ev.action] || ev.action) + " by " + ev.by;
    if (ev.until) text += " until " + new Date(ev.until).toLocaleString();
    if (ev.reason) text += ": " + ev.reason;
    notice(v, text, "mod");
    if (ev.action === "op" || ev.action === "deop") refreshMembers(v);
  }

  function topicChanged(ev) {
    const v = view("room", ev.room);
    const was = v.topic;
    v.topic = ev.topic;
    if (was !== ev.topic || !v.loaded) notice(v, ev.topic ? "topic: " + ev.topic + (ev.by ? " (set by " + ev.by + ")" : "") : "no topic now", "mod");
    render();
  }

  async function listRooms() {
    const list = await request({ type: "rooms", limit: 50 }).catch(() => null);
    if (!list) return;
    const items = list.rooms.map((r) => {
      const el = li(undefined, "public-room");
      el.dataset.name = r.room;
      el.append(span("", "#" + r.room + " (" + r.count + ")"));
      if (r.topic) el.append(span("room-topic", r.topic));
      el.title = "join " + r.room;
      el.onclick = () => submit("/join " + r.room);
      return el;
    });
    if (list.more) items.push(li("and " + (list.total - list.rooms.length) + " more", "more"));
    $("public-rooms").replaceChildren(...items);
  }

  function summary(e) {
    const names = (list) => list.length <= 4 ? list.join(", ") : list.slice(0, 3).join(", ") + " and " + (list.length - 3) + " others";
    const parts = [];
    if (e.joined.length) parts.push(names(e.joined) + " joined");
    if (e.left.length) parts.push(names(e.left) + " left");
    return parts.join("; ") || "no change in members";
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
      for (const m of page.msgs) { if (m.seq > last) return; if (m.type === "msg") dmMsg(m, "fill"); else dmAmended(m); since = m.seq; }
    }
    render();
  }

  async function fillGap(gap) {
    const v = view("room", gap.room);
    let since = gap.first - 1;
    while (since < gap.last) {
      const page = await request({ type: "history", room: gap.room, since, limit: 100 }).catch(() => null);
      if (!page || !page.msgs.length) break;
      for (const m of page.msgs) { if (m.seq > gap.last) break; if (m.type === "msg") roomMsg(m, "fill"); else amended(m); since = m.seq; }
    }
    render();
  }

  async function loadHistory(v) {
    if (v.kind !== "room" || !v.more || v.loading) return;
    v.loading = true;
    const oldest = v.loaded ? v.msgs.find((m) => m.seq) : null;
    const h = { type: "history", room: v.name, limit: PAGE };
    if (oldest) h.before = oldest.seq;
    const page = await request(h).catch(() => null);
    v.loading = false;
    if (!page) return;
    v.loaded = true;
    v.more = page.more;
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    for (const m of page.msgs) if (m.type === "msg") roomMsg(m, "older");
    render();
    if (oldest && isCurrent(v)) list.scrollTop = list.scrollHeight - fromBottom; // keep the reader's place
  }

  async function refreshMembers(v) {
    if (v.kind !== "room") return;
    const users = await request({ type: "who", room: v.name }).catch(() => null);
    if (!users) return;
    v.members = new Set(users.nicks);
    v.roles = users.roles || {};
    v.complete = !users.more;
    v.count = v.complete ? v.members.size : users.count;
    render();
  }

  // What the user types.

  const HELP = "/join room · /leave [room] · /dm nick text (or account:id, for an account offline) · /me action · /who [room] · /rooms · /quit; anything else is said where you are. " +
    "Hover a message to reply, react, or edit and delete your own; @nick mentions someone. " +
    "In a room you run: /kick nick [why] · /ban nick [time like 10m] [why] · /unban nick · /mute nick [time] [why] · /unmute nick · /op nick · /deop nick · /invite nick · /private on|off · /topic text (- clears)";

  // moderate sends a moderation request about nick in the current room:
  // rest is [time] [why], as /help says.
  async function moderate(v, action, nick, rest) {
    if (!nick || v.kind !== "room") { notice(v, "/" + action + " nick, in a room", "lost"); return false; }
    const req = { type: action, room: v.name, nick };
    const m = /^(\d+)([smhd])\b\s*(.*)$/.exec(rest);
    if (m && (action === "ban" || action === "mute" || action === "invite")) {
      req.duration = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
      rest = m[3];
    }
    if (rest && (action === "kick" || action === "ban" || action === "mute")) req.reason = rest;
    await request(req);
    return true;
  }

  // submit runs a line; it resolves true when the line was taken (sent,
  // or a command done), false when the input should keep it.
  async function submit(text) {
    text = text.trim();
    if (!text) return true;
    const v = currentView();
    const c = state.composing;
    if (c && c.v === v && !text.startsWith("/")) {
      stopComposing();
      if (c.kind === "edit") return act(v, c.e, "edit", { body: text });
      return say(v, text, c.e.seq);
    }
    if (!text.startsWith("/") || text.startsWith("//")) return say(v, text.replace(/^\//, ""));
    const [cmd, ...rest] = text.split(/\s+/);
    const arg = rest.join(" ");
    try {
      switch (cmd) {
        case "/me": return arg ? say(v, "/me " + arg) : (notice(v, "/me does something: /me waves"), false);
        case "/join": await join(arg); return true;
        case "/leave": await leave(arg || (v.kind === "room" ? v.name : "")); return true;
        case "/dm": {
          const [to, ...body] = rest;
          if (!to || !body.length) { notice(v, "/dm nick text"); return false; }
          return dm(to, body.join(" "));
        }
        case "/who": {
          const room = arg || (v.kind === "room" ? v.name : "");
          const users = await request(room && room !== "*" ? { type: "who", room } : { type: "who" });
          notice(v, (room && room !== "*" ? room : "online") + " (" + users.count + "): " + users.nicks.join(", ") + (users.more ? ", …" : ""));
          return true;
        }
        case "/kick": case "/ban": case "/unban": case "/mute": case "/unmute": case "/op": case "/deop": case "/invite": case "/uninvite":
          return await moderate(v, cmd.slice(1), rest[0], rest.slice(1).join(" "));
        case "/topic":
          if (v.kind !== "room" || !arg) { notice(v, "/topic text, in a room (/topic - clears it)", "lost"); return false; }
          await request({ type: "topic", room: v.name, topic: arg === "-" ? "" : arg });
          return true;
        case "/private":
          if (v.kind !== "room" || (arg !== "on" && arg !== "off")) { notice(v, "/private on|off, in a room", "lost"); return false; }
          await request({ type: "private", room: v.name, private: arg === "on" });
          return true;
        case "/rooms": await listRooms(); $("side").classList.add("open"); return true;
        case "/quit": state.quitting = true; forget(); send({ type: "quit" }); return true;
        case "/help": notice(v, HELP); return true;
      }
      notice(v, "unknown command " + cmd + ": /help lists them", "lost");
      return false;
    } catch (err) {
      notice(v, human(err), "lost");
      return false;
    }
  }

  // tooLong checks a body against the server's limit before sending it.
  function tooLong(v, body) {
    const bytes = new TextEncoder().encode(body).length;
    if (bytes <= state.info.max_body) return false;
    notice(v, "Too long to send: " + bytes + " bytes, and the server takes " + state.info.max_body + ". Your text is still in the box.", "lost");
    return true;
  }

  // say shows the line at once as pending, and as sent when acked or
  // failed (with why) when not; it resolves false on failure, so that the
  // input gets the line back.
  async function say(v, body, replyTo) {
    if (v.kind === "dm") return dm(v.name, body);
    if (tooLong(v, body)) return false;
    const id = "w" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    const e = entry("msg", { nick: state.nick, text: body, mine: true, pending: true, id, replyTo: replyTo || 0, reactions: [] });
    place(v, e);
    render(true);
    try {
      const req = { type: "say", room: v.name, body, id };
      if (replyTo) req.reply_to = replyTo;
      const ack = await request(req);
      markSoon(v);
      if (ack.seq > v.seq) v.seq = ack.seq;
      if (e.pending) confirm(v, e, ack.seq);
      return true;
    } catch (err) {
      fail(e, err);
      return false;
    } finally {
      render();
    }
  }

  // dm sends a direct message; the conversation opens once the server
  // takes it, so a DM to nobody leaves no conversation behind.
  async function dm(to, body) {
    const cur = currentView();
    if (tooLong(cur, body)) return false;
    const existing = state.dms.has(to);
    const e = entry("msg", { nick: state.nick, text: body, mine: true, pending: true });
    if (existing) { place(view("dm", to), e); render(true); }
    try {
      const ack = await request(/^account:/.test(to) ? { type: "dm", account: to.slice(8), body } : { type: "dm", to, body });
      const dv = view("dm", to);
      e.pending = false;
      if (ack.seq) { e.seq = ack.seq; if (ack.seq > state.dmSeq) state.dmSeq = ack.seq; }
      if (!existing) { if (!e.seq || !dv.seqs.has(e.seq)) place(dv, e); select("dm", to); }
      else if (e.seq) dv.seqs.add(e.seq);
      return true;
    } catch (err) {
      if (existing) fail(e, err);
      else notice(cur, "Not sent to " + to + ": " + human(err), "lost");
      return false;
    } finally {
      render();
    }
  }

  function confirm(v, e, seq) {
    e.pending = false;
    e.failed = false;
    if (!seq) return;
    e.seq = seq;
    v.seqs.add(seq);
    // Others' later messages may have come before the ack: put it in order.
    v.msgs.splice(v.msgs.indexOf(e), 1);
    v.seqs.delete(seq);
    place(v, e);
  }

  function fail(e, err) {
    e.pending = false;
    e.failed = true;
    e.why = human(err);
  }

  function restoreInput(body) {
    const input = $("input");
    if (!input.value) input.value = body;
  }

  async function join(name) {
    if (!name) return;
    const ack = await request({ type: "join", room: name });
    const display = name.normalize("NFKC").toLowerCase(); // as the server names it (PRECIS maps width, NFC, case)
    const v = view("room", display);
    if (ack.epoch && ack.epoch !== v.epoch) { v.epoch = ack.epoch; v.seq = ack.seq || 0; }
    select("room", display);
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
    v.mentions = 0;
    state.newBelow = false;
    $("side").classList.remove("open");
    render(true);
    renderTyping();
    if (kind === "room" && !v.loaded) loadHistory(v);
    if (state.composing && state.composing.v !== v) stopComposing();
    markSoon(v);
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

  function span(cls, text) {
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  // nickClass gives each nick one of twelve colours, the same everywhere.
  function nickClass(nick) {
    let h = 2166136261;
    for (const c of nick) { h ^= c.codePointAt(0); h = Math.imul(h, 16777619) >>> 0; }
    return "nick n" + (h % 12);
  }

  // linkify appends text to el with its http and https URLs as links. The
  // URL is checked by the URL parser; nothing becomes HTML.
  const URLS = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function linkify(el, text) {
    let at = 0;
    for (const m of text.matchAll(URLS)) {
      let href = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
      let url;
      try { url = new URL(href); } catch { continue; }
      if (url.protocol !== "http:" && url.protocol !== "https:") continue;
      el.append(document.createTextNode(text.slice(at, m.index)));
      const a = document.createElement("a");
      a.href = url.href;
      a.textContent = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      el.append(a);
      at = m.index + href.length;
    }
    el.append(document.createTextNode(text.slice(at)));
  }

  function sideList(ul, map, kind, label) {
    ul.replaceChildren();
    for (const [name, v] of map) {
      const el = li(undefined, isCurrent(v) ? "current" : "");
      el.dataset.name = name;
      const title = document.createElement("span");
      title.textContent = label(name);
      const badge = span("unread" + (v.mentions || (kind === "dm" && v.unread) ? " mentioned" : ""), v.unread ? String(v.unread) : "");
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

  // counts are the unread messages and mentions (DMs count as mentions)
  // of every view, for the title, and of the views not on screen, for
  // the phone's menu badge.
  function counts() {
    let unread = 0, mentions = 0, hidden = 0, hiddenMentions = 0;
    for (const v of [...state.rooms.values(), ...state.dms.values()]) {
      unread += v.unread;
      mentions += v.mentions;
      if (!isCurrent(v)) { hidden += v.unread; hiddenMentions += v.mentions; }
    }
    return { unread, mentions, hidden, hiddenMentions };
  }

  const atEnd = () => { const l = $("messages"); return l.scrollHeight - l.scrollTop - l.clientHeight < 40; };

  function render(scrollToEnd) {
    const v = currentView();
    const c = counts();
    document.title = (c.unread ? "(" + c.unread + ") " : "") + (c.mentions ? "@" + c.mentions + " " : "") + "Parley";
    $("menu-badge").textContent = c.hidden ? String(c.hidden) : "";
    $("menu-badge").classList.toggle("mentioned", c.hiddenMentions > 0);
    $("title").textContent = (v.kind === "room" ? "#" + v.name : "@" + v.name) + " · " + state.nick;
    $("topic").textContent = v.kind === "room" ? v.topic : "";
    sideList($("rooms"), state.rooms, "room", (n) => "#" + n);
    sideList($("dms"), state.dms, "dm", (n) => "@" + n);
    const names = [...v.members].sort();
    const mine = v.roles[state.nick];
    const members = names.map((n) => memberItem(v, n, mine));
    const unlisted = v.count - names.length;
    if (v.kind === "room" && unlisted > 0) members.push(li("and " + unlisted + " more", "more"));
    $("members").replaceChildren(...(v.kind === "room" ? members : []));
    $("member-count").textContent = v.kind === "room" ? "(" + Math.max(v.count, names.length) + ")" : "";
    const list = $("messages");
    const wasAtEnd = atEnd();
    const items = [];
    if (v.kind === "room" && v.more && v.loaded) items.push(li("scroll up for older messages", "more"));
    let since = false;
    for (const m of v.msgs) {
      if (!since && v.since !== undefined && m.kind === "msg" && m.seq > v.since && !m.mine) { items.push(li("new since you left", "since")); since = true; }
      items.push(line(m, v));
    }
    list.replaceChildren(...items);
    if (scrollToEnd || wasAtEnd) { list.scrollTop = list.scrollHeight; state.newBelow = false; }
    $("new-below").hidden = !state.newBelow;
    saveSoon();
  }

  // memberItem is one member of the list: its nick, its role, and for an
  // owner or operator looking, the actions it may take on it (the server
  // checks them again).
  const RANK = { owner: 2, operator: 1 };
  function memberItem(v, nick, mine) {
    const el = li(undefined, "member");
    el.dataset.nick = nick;
    el.append(span(nickClass(nick), nick));
    const role = v.roles[nick];
    if (role) el.append(span("role", role === "owner" ? " owner" : " op"));
    if (!mine || nick === state.nick || (RANK[role] || 0) >= RANK[mine]) return el;
    const acts = ["kick", "mute", "ban"];
    if (mine === "owner") acts.push(role === "operator" ? "deop" : "op");
    for (const a of acts) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "mod " + a; b.textContent = a; b.title = a + " " + nick;
      b.onclick = () => { moderate(v, a, nick, "").catch((err) => notice(v, human(err), "lost")); };
      el.append(b);
    }
    return el;
  }

  function line(m, v) {
    if (m.kind !== "msg") {
      const el = li(undefined, "notice " + (m.cls || ""));
      el.append(span("time", time(m.at)), document.createTextNode(m.text));
      return el;
    }
    const action = m.text.startsWith("/me ");
    const cls = ["msg"];
    if (m.mine) cls.push("mine");
    if (m.mention) cls.push("mention");
    if (m.pending) cls.push("pending");
    if (m.failed) cls.push("failed");
    if (action) cls.push("action");
    const el = li(undefined, cls.join(" "));
    if (m.seq) el.dataset.seq = String(m.seq);
    if (m.replyTo) {
      const q = v && v.msgs.find((x) => x.kind === "msg" && x.seq === m.replyTo);
      el.append(span("quote", "↪ " + (q ? q.nick + ": " + (q.deleted ? "(deleted)" : q.text) : "#" + m.replyTo)));
    }
    el.append(span("time", time(m.at)));
    if (m.deleted) {
      el.append(span(nickClass(m.nick), m.nick), span("tombstone", "message deleted"));
      return el;
    }
    if (action) {
      el.append(span(nickClass(m.nick), "* " + m.nick));
      linkify(el, " " + m.text.slice(4));
    } else {
      el.append(span(nickClass(m.nick), m.nick));
      if (m.app) el.append(span("app", "app"));
      linkify(el, m.text);
    }
    if (m.edited) el.append(span("edited", " (edited)"));
    if (m.failed) el.append(span("why", "✗ " + m.why));
    if (m.reactions && m.reactions.length) {
      const chips = document.createElement("span");
      chips.className = "chips";
      for (const r of m.reactions) {
        const b = document.createElement("button");
        b.type = "button"; b.className = "chip" + (r.me ? " me" : ""); b.textContent = r.emoji + " " + r.count;
        b.title = r.me ? "take back " + r.emoji : "react " + r.emoji;
        b.onclick = () => react(v, m, r.emoji);
        chips.append(b);
      }
      el.append(chips);
    }
    if (v && m.seq && !m.pending && (v.kind === "room" || m.mine && state.account)) el.append(actions(v, m));
    return el;
  }

  // actions is a message's hover bar: reply, a few reactions, and for
  // its author (or the room's owner or an operator) edit and delete.
  const QUICK = ["👍", "❤️", "😂", "🎉"];
  function actions(v, m) {
    const bar = document.createElement("span");
    bar.className = "acts";
    // The labels are drawn by CSS (attr(data-label)): the bar is not the
    // message's text, and copying or reading the line leaves it out.
    const button = (cls, text, title, fn) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = cls; b.dataset.label = text; b.title = title; b.setAttribute("aria-label", title); b.onclick = fn;
      bar.append(b);
    };
    if (v.kind === "room") {
      button("reply", "↩", "reply", () => compose("reply", v, m));
      for (const e of QUICK) button("react", e, "react " + e, () => react(v, m, e));
    }
    if (m.mine) button("edit", "✎", "edit", () => compose("edit", v, m));
    if (m.mine || RANK[(v.roles || {})[state.nick]]) button("delete", "🗑", "delete", () => act(v, m, "delete", {}));
    return bar;
  }

  // Wiring.

  function showLogin() {
    const auth = state.info.auth;
    $("nick-field").hidden = auth === "required";
    $("token-field").hidden = auth === "off";
    $("login-hint").textContent = auth === "required" ? "This server requires a token from the application you log in with."
      : auth === "optional" ? "Log in with a token, or with a nick as a guest (shown as ~nick)." : "";
  }

  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    state.wantNick = $("token-field").hidden || !$("login-token").value.trim() ? $("login-nick").value.trim() : "";
    state.token = $("token-field").hidden ? "" : $("login-token").value.trim();
    if (!state.wantNick && !state.token) { $("login-error").textContent = state.info.auth === "required" ? "A token, please." : "A nick, please."; return; }
    $("login-error").textContent = "";
    // Asked on this click, never on load: notifications of DMs and
    // mentions while the tab is hidden.
    if (window.Notification && Notification.permission === "default") Notification.requestPermission().catch(() => {});
    state.quitting = false;
    connect();
  });
  $("compose").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("input");
    const text = input.value;
    if (!text.trim()) return;
    if (!connected()) { notice(currentView(), "Not connected: your message is still in the box; send it once the status says connected.", "lost"); return; }
    state.sent.push(text);
    if (state.sent.length > RECALL) state.sent.shift();
    state.recall = -1;
    input.value = "";
    if (!(await submit(text))) restoreInput(text);
  });
  $("input").addEventListener("input", typed);
  $("input").addEventListener("keydown", (e) => {
    const input = $("input");
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("compose").requestSubmit(); return; }
    // Up and Down recall the lines sent, when the caret is on the first
    // (or last) line of the input.
    if ((e.key === "ArrowUp" || e.key === "ArrowDown") && state.sent.length) {
      const before = input.value.slice(0, input.selectionStart);
      const after = input.value.slice(input.selectionEnd);
      if (e.key === "ArrowUp" && before.includes("\n")) return;
      if (e.key === "ArrowDown" && (after.includes("\n") || state.recall < 0)) return;
      e.preventDefault();
      if (state.recall < 0) { state.draft = input.value; state.recall = state.sent.length; }
      state.recall += e.key === "ArrowUp" ? -1 : 1;
      state.recall = Math.max(0, state.recall);
      if (state.recall >= state.sent.length) { input.value = state.draft; state.recall = -1; }
      else input.value = state.sent[state.recall];
      input.setSelectionRange(input.value.length, input.value.length);
    }
  });
  $("join-form").addEventListener("submit", (e) => { e.preventDefault(); const r = $("join-room"); submit("/join " + r.value); r.value = ""; });
  $("dm-form").addEventListener("submit", (e) => { e.preventDefault(); const n = $("dm-nick"); openDM(n.value.trim()); n.value = ""; });
  $("menu").addEventListener("click", () => $("side").classList.toggle("open"));
  $("list-rooms").addEventListener("click", () => listRooms());
  $("new-below").addEventListener("click", () => { state.newBelow = false; render(true); });
  $("composing-cancel").addEventListener("click", () => { if (state.composing && state.composing.kind === "edit") $("input").value = ""; stopComposing(); });
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop === 0) loadHistory(currentView());
    if (state.newBelow && atEnd()) { state.newBelow = false; $("new-below").hidden = true; }
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { const v = currentView(); v.unread = 0; v.mentions = 0; render(); markSoon(v); } });
  window.addEventListener("pagehide", save);

  // The login form asks the server whether it takes nicks, tokens or both;
  // a reload resumes the tab's session.
  fetch("info").then((r) => r.ok ? r.json() : null).catch(() => null).then((info) => {
    if (info) Object.assign(state.info, info);
    showLogin();
  });
  if (restore()) {
    $("login").hidden = true;
    $("chat").hidden = false;
    render();
    connect();
  } else {
    showLogin();
  }

  // For tests and for trying resume by hand: drop the connection as a
  // network would, and hold the reconnect for ms.
  window.parleyDebug = {
    drop(ms) { state.holdUntil = Date.now() + (ms || 0); if (state.ws) state.ws.close(); },
    state,
  };
})();
