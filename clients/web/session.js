// One websocket session with the daemon (sferum.v1.json at /v1/ws), as the web pages use it:
// auth first, then the catch-up up to `synced`, then live pushes. When the connection drops
// it reconnects with backoff and resumes from the last stream position it saw (PROTOCOL.md
// "Exactly-once resume"), so no event is missed or delivered twice; requests made meanwhile
// wait in a queue and go out once the new connection is authenticated.
//
//   const s = new Session({ token });
//   s.onState((state, info) => ...);          // "connecting" | "open" | "closed"
//   s.on("ev", (event) => ...);               // also "synced", "gap", "typing", "call", ...
//   await s.connect();                        // the auth result {user_id, device_id, pos}
//   const { event } = await s.request("send", { room_id, content: { body: "Привет" } });
//   s.close();
//
// Only a refused token (auth_failed, or close code 4003: the device was signed out) ends the
// session for good: onState reports "closed" with {revoked: true}. A closed session stays
// closed; make a new one to start again.
//
// A refused request rejects with the server's error map {code, message, ...}; a request lost
// with its connection rejects with {code: "connection_lost"} unless it is safe to repeat
// (a read, or a write with a `txn`, which the session adds itself), in which case it is sent
// again on the next connection.

const SUBPROTOCOL = "sferum.v1.json";
// Ops that read only: sent again after a reconnect without asking anyone.
const READS = new Set([
  "ping", "rooms", "members", "history", "presence", "profiles", "knocks", "reports",
  "edits", "reactions", "poll_results", "search", "call_get", "whiteboard",
]);
// Ops that take a `txn` (protocol/frames.py): the session adds a fresh one when the caller
// gave none, so a write repeated after a lost connection is stored once.
const TXN_OPS = new Set([
  "send", "state", "redact", "edit", "react", "pin", "unpin", "forward", "poll", "close_poll",
]);
// Catch-up size per room after a reconnect; older events are reported as a `gap`.
const RESUME_LIMIT = 1000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25000;
const PING_TIMEOUT_MS = 10000;
const CLOSE_REVOKED = 4003;
const CLOSE_FLOOD = 4009;
const FLOOD_PAUSE_MS = 30000;

export function defaultUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/ws`;
}

function freshTxn() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `w${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class Session {
  // since: a stream position the caller already has (from an earlier session); without it
  // the first connection starts "from now" (limit 0) and the pages read what they show with
  // `rooms` and `history`.
  constructor({ token, url = defaultUrl(), since = null } = {}) {
    this.token = token;
    this.url = url;
    this.pos = since;
    this.state = "closed";
    this.userId = null;
    this.deviceId = null;
    this.connects = 0; // successful auths so far; > 1 means a resume
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {frame, resolve, reject}
    this._queue = []; // frames waiting for an authenticated connection
    this._handlers = new Map(); // push key -> Set of handlers
    this._stateHandlers = new Set();
    this._attempt = 0;
    this._timer = null;
    this._pinger = null;
    this._stopped = false;
    this._ready = null;
    this._onOnline = () => this._reconnectNow();
  }

  // Resolves with the auth result once the first connection is authenticated; rejects with
  // {code: "auth_failed" | "revoked"} when the token is refused (nothing is retried then).
  connect() {
    if (!this._ready) {
      this._ready = {};
      this._ready.promise = new Promise((resolve, reject) => {
        this._ready.resolve = resolve;
        this._ready.reject = reject;
      });
      this._stopped = false;
      window.addEventListener("online", this._onOnline);
      this._open();
    }
    return this._ready.promise;
  }

  request(op, fields = {}) {
    const frame = { ...fields, op };
    if (TXN_OPS.has(op) && frame.txn == null) frame.txn = freshTxn();
    return new Promise((resolve, reject) => {
      if (this._stopped && this.state === "closed" && this._ready) {
        reject({ code: "closed", message: "the session is closed" });
        return;
      }
      const entry = { frame, resolve, reject };
      if (this.state === "open") this._send(entry);
      else this._queue.push(entry);
    });
  }

  // handler(value, frame) for every push with that key; returns the unsubscribe function.
  on(key, handler) {
    if (!this._handlers.has(key)) this._handlers.set(key, new Set());
    this._handlers.get(key).add(handler);
    return () => this._handlers.get(key)?.delete(handler);
  }

  // handler(state, info): info is {code, reason} of the close, {revoked: true} when the
  // device was signed out, {resumed: true} on an open after a reconnect.
  onState(handler) {
    this._stateHandlers.add(handler);
    return () => this._stateHandlers.delete(handler);
  }

  close() {
    this._stopped = true;
    window.removeEventListener("online", this._onOnline);
    clearTimeout(this._timer);
    this._stopPinger();
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000);
    this._failAll({ code: "closed", message: "the session is closed" });
    this._setState("closed", { code: 1000 });
  }

  // -- inside ---------------------------------------------------------------------------

  _setState(state, info = {}) {
    this.state = state;
    for (const handler of [...this._stateHandlers]) {
      try {
        handler(state, info);
      } catch (err) {
        console.error(err);
      }
    }
  }

  _emit(key, value, frame) {
    for (const handler of [...(this._handlers.get(key) || [])]) {
      try {
        handler(value, frame);
      } catch (err) {
        console.error(err);
      }
    }
  }

  _open() {
    if (this._stopped) return;
    this._setState("connecting", { attempt: this._attempt });
    let ws;
    try {
      ws = new WebSocket(this.url, [SUBPROTOCOL]);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    this._authed = false;
    ws.onopen = () => this._auth(ws);
    ws.onmessage = (message) => {
      if (ws !== this._ws) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this._receive(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this._ws) return;
      this._lost({ code: event.code, reason: event.reason });
    };
  }

  _auth(ws) {
    const fields = { token: this.token };
    if (this.pos === null) fields.limit = 0;
    else {
      fields.since = this.pos;
      fields.limit = RESUME_LIMIT;
    }
    const id = `auth-${this._nextId++}`;
    this._pending.set(id, {
      frame: { id, op: "auth", ...fields },
      resolve: (result) => this._authed_ok(result),
      reject: (error) => this._authFailed(error),
      internal: true,
    });
    ws.send(JSON.stringify({ id, op: "auth", ...fields }));
  }

  _authed_ok(result) {
    this._authed = true;
    this._attempt = 0;
    this.userId = result.user_id;
    this.deviceId = result.device_id;
    this.connects += 1;
    this._setState("open", { resumed: this.connects > 1 });
    this._startPinger();
    const waiting = this._queue;
    this._queue = [];
    for (const entry of waiting) this._send(entry);
    if (this._ready?.resolve) {
      this._ready.resolve(result);
      this._ready.resolve = null;
    }
  }

  _authFailed(error) {
    if (error.code === "invalid_field" && this.pos !== null) {
      // Our position is beyond the server's newest: another server, or its data was reset.
      // Start again from now and tell the pages to read everything anew.
      this.pos = null;
      this._emit("reset", {}, null);
      if (this._ws) this._auth(this._ws);
      return;
    }
    if (error.code === "auth_failed") {
      this._giveUp({ code: error.code, message: error.message });
      return;
    }
    // Anything else (rate_limited, internal, a closed connection) passes: try again later.
    const ws = this._ws;
    if (ws) {
      ws.close(4000);
      this._lost({ code: 4000, reason: error.code || "auth refused" });
    }
  }

  _giveUp(error) {
    this._stopped = true;
    clearTimeout(this._timer);
    this._stopPinger();
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000);
    this._failAll(error);
    this._setState("closed", { ...error, revoked: true });
    if (this._ready?.resolve) {
      this._ready.reject(error);
      this._ready.resolve = null;
    }
  }

  _send(entry) {
    const id = this._nextId++;
    entry.frame.id = id;
    this._pending.set(id, entry);
    try {
      this._ws.send(JSON.stringify(entry.frame));
    } catch {
      // The socket died under us: the close handler requeues it.
    }
  }

  _receive(frame) {
    if ("id" in frame) {
      const entry = this._pending.get(frame.id);
      if (!entry) return;
      this._pending.delete(frame.id);
      if ("ok" in frame) entry.resolve(frame.ok);
      else entry.reject(frame.error || { code: "bad_frame" });
      return;
    }
    const key = Object.keys(frame)[0];
    if (key === undefined) return;
    const value = frame[key];
    if (key === "ev") {
      // Positions only grow; anything at or below ours was seen already.
      if (this.pos !== null && value.pos <= this.pos) return;
      this.pos = value.pos;
    } else if (key === "synced") {
      if (this.pos === null || value.pos > this.pos) this.pos = value.pos;
    }
    this._emit(key, value, frame);
  }

  _lost(info) {
    this._ws = null;
    this._stopPinger();
    // What was in flight: repeat the safe ones, fail the rest (they may have taken effect).
    const again = [];
    for (const [, entry] of this._pending) {
      if (entry.internal) continue;
      if (READS.has(entry.frame.op) || entry.frame.txn != null) again.push(entry);
      else entry.reject({ code: "connection_lost", message: "the connection closed before the answer" });
    }
    this._pending.clear();
    this._queue = [...again, ...this._queue];
    if (info.code === CLOSE_REVOKED) {
      this._giveUp({ code: "revoked", message: "this device was signed out" });
      return;
    }
    if (this._stopped) return;
    this._setState("connecting", info);
    this._scheduleReconnect(info.code === CLOSE_FLOOD ? FLOOD_PAUSE_MS : null);
  }

  _scheduleReconnect(delay = null) {
    clearTimeout(this._timer);
    const base = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
    this._attempt += 1;
    const wait = delay ?? base * (0.75 + Math.random() * 0.5);
    this._timer = setTimeout(() => this._open(), wait);
  }

  _reconnectNow() {
    if (this._stopped || this.state !== "connecting" || this._ws) return;
    clearTimeout(this._timer);
    this._open();
  }

  // Browsers don't see a half-dead TCP connection; a ping that stays unanswered does.
  _startPinger() {
    this._stopPinger();
    this._pinger = setInterval(() => {
      const ws = this._ws;
      if (!ws || this.state !== "open") return;
      const timeout = setTimeout(() => {
        if (ws === this._ws) ws.close(4000);
        if (ws === this._ws) this._lost({ code: 4000, reason: "ping timeout" });
      }, PING_TIMEOUT_MS);
      this.request("ping").then(
        () => clearTimeout(timeout),
        () => clearTimeout(timeout),
      );
    }, PING_EVERY_MS);
  }

  _stopPinger() {
    clearInterval(this._pinger);
    this._pinger = null;
  }

  _failAll(error) {
    for (const [, entry] of this._pending) if (!entry.internal) entry.reject(error);
    this._pending.clear();
    for (const entry of this._queue) entry.reject(error);
    this._queue = [];
  }
}
