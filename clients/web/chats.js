// The chat list: the user's rooms (the `rooms` op) with what kind of chat each is, unread
// counts, the last message and the calls one may join, kept current from live pushes.
// People's names come from the `profiles` op, cached.

import { h } from "./dom.js";
import { currentLang, t } from "./i18n.js";

export const KINDS = ["class", "parents", "colleagues", "subject"];
const JOINABLE = new Set(["open", "running"]);
const LAST_PAGE = 30; // events read per room to find its last message

export function kindOf(room) {
  const kind = room.chat?.kind;
  return KINDS.includes(kind) ? kind : "other";
}

export function timeText(ts) {
  const when = new Date(ts);
  const locale = currentLang() === "ru" ? "ru-RU" : "en-GB";
  const today = new Date().toDateString() === when.toDateString();
  return today
    ? when.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" })
    : when.toLocaleDateString(locale, { day: "numeric", month: "short" });
}

// What a message says in one line: its text, or what it carries.
export function preview(event) {
  if (event.redacted_by) return t("msg.deleted");
  const c = event.content || {};
  if (c.poll) return t("list.poll", { question: c.poll.question });
  if (c.file && !c.body) return t("list.file", { name: c.file.name });
  return c.body || "";
}

export class People {
  constructor(session, me) {
    this.session = session;
    this.me = me;
    this.names = new Map();
    this.waiting = new Map();
  }

  name(userId) {
    if (userId === this.me.user_id) return t("people.me");
    return this.names.get(userId) || userId;
  }

  // Fetches the names not known yet; resolves when they are.
  async load(userIds) {
    const missing = [...new Set(userIds)].filter(
      (id) => id && !this.names.has(id) && id !== this.me.user_id,
    );
    const asks = [];
    for (let i = 0; i < missing.length; i += 100) {
      const batch = missing.slice(i, i + 100);
      asks.push(
        this.session.request("profiles", { user_ids: batch }).then(
          (out) => {
            for (const [id, p] of Object.entries(out.profiles)) {
              const name = [p.last_name, p.first_name].filter(Boolean).join(" ");
              this.names.set(id, name || t("people.unknown"));
            }
            // Someone whose profile we may not see (or a journal's own account): asked once.
            for (const id of out.unknown) this.names.set(id, t("people.unknown"));
          },
          () => {},
        ),
      );
    }
    await Promise.all(asks);
  }
}

export class Chats {
  constructor(session, me, people) {
    this.session = session;
    this.me = me;
    this.people = people;
    this.rooms = new Map(); // room id -> summary, plus last and calls
    this.openRoom = null; // the chat on screen: its messages count as read
    this.listeners = new Set();
    this._refreshing = null;
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  changed() {
    for (const listener of [...this.listeners]) listener();
  }

  async load() {
    const { rooms } = await this.session.request("rooms");
    const old = this.rooms;
    this.rooms = new Map();
    for (const room of rooms) {
      const before = old.get(room.room_id);
      this.rooms.set(room.room_id, { ...room, last: before?.last ?? null, calls: room.calls || [] });
    }
    await Promise.all(
      rooms
        .filter((r) => r.membership === "join" && !this.rooms.get(r.room_id).last)
        .map((r) => this._loadLast(r.room_id)),
    );
    await this.people.load([...this.rooms.values()].map((r) => r.last?.sender));
    this.loaded = true;
    this.changed();
  }

  // Reads the rooms again, once at a time (many pushes may ask for it together).
  refresh() {
    if (!this._refreshing) {
      this._refreshing = this.load().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _loadLast(roomId) {
    try {
      const { events } = await this.session.request("history", { room_id: roomId, limit: LAST_PAGE });
      const last = events.filter((e) => e.type === "message").pop();
      const room = this.rooms.get(roomId);
      if (room && last && (!room.last || room.last.pos < last.pos)) room.last = last;
    } catch {
      // A room we may not read any more: no last message.
    }
  }

  // A live event: the list follows it.
  async apply(ev) {
    const room = this.rooms.get(ev.room_id);
    if (ev.type === "member" && ev.state_key === this.me.user_id) return this.refresh();
    if (!room) return undefined;
    if (ev.type === "message") {
      room.last = ev;
      if (ev.sender !== this.me.user_id && this.openRoom !== ev.room_id) room.unread += 1;
      await this.people.load([ev.sender]);
    } else if (ev.type === "redaction" && room.last?.event_id === ev.redacts) {
      room.last = { ...room.last, content: {}, redacted_by: ev.event_id };
    } else if (ev.type === "edit" && room.last?.event_id === ev.content.replaces) {
      room.last = { ...room.last, content: { ...room.last.content, body: ev.content.body } };
    } else if (ev.type === "name") {
      room.name = ev.content.name ?? null;
    } else if (ev.type === "member") {
      room.members += ev.content.membership === "join" ? 1 : 0;
      return this.refresh();
    } else if (ev.type === "call") {
      room.calls = room.calls.filter((c) => c.call_id !== ev.state_key);
      if (JOINABLE.has(ev.content.state)) room.calls.push(ev.content);
    } else {
      return undefined;
    }
    this.changed();
    return undefined;
  }

  markRead(roomId, pos) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    const changed = room.unread !== 0;
    room.unread = 0;
    if (pos > room.read_pos) {
      room.read_pos = pos;
      this.session.request("read", { room_id: roomId, pos }).catch(() => {});
    }
    if (changed) this.changed();
  }

  sorted() {
    return [...this.rooms.values()].sort((a, b) => {
      const pa = a.last?.pos ?? 0;
      const pb = b.last?.pos ?? 0;
      if (pa !== pb) return pb - pa;
      return (a.name || "").localeCompare(b.name || "");
    });
  }
}

// The list itself: one link per chat, the open one marked.
export function chatList(chats, people, current, navigate) {
  const rooms = chats.sorted();
  if (rooms.length === 0) return h("p", { class: "hint", text: t("list.empty") });
  return h(
    "ul",
    { class: "chat-list" },
    rooms.map((room) => {
      const kind = kindOf(room);
      const name = room.name || t("chat.unnamed");
      const last = room.last;
      const href = `/chats/${encodeURIComponent(room.room_id)}`;
      const label = [name, t(`kind.${kind}`)];
      if (room.unread) label.push(t("list.unread", { count: room.unread }));
      return h(
        "li",
        { "data-room-id": room.room_id },
        h(
          "a",
          {
            href,
            class: room.room_id === current ? "chat-item current" : "chat-item",
            "aria-current": room.room_id === current ? "page" : null,
            "aria-label": label.join(", "),
            onclick: (event) => {
              event.preventDefault();
              navigate(href);
            },
          },
          h(
            "span",
            { class: "chat-line" },
            h("span", { class: "chat-name", text: name }),
            h("span", { class: `badge kind-${kind}`, "data-kind": kind, text: t(`kind.${kind}`) }),
            room.membership === "invite" ? h("span", { class: "badge", text: t("list.invited") }) : null,
            room.calls.length ? h("span", { class: "badge live", text: t("list.call") }) : null,
            room.unread
              ? h("span", { class: "unread", "data-unread": String(room.unread), text: String(room.unread) })
              : null,
          ),
          h(
            "span",
            { class: "chat-last" },
            last
              ? `${people.name(last.sender)}: ${preview(last)}`
              : t("list.members", { count: room.members }),
          ),
          last ? h("time", { datetime: new Date(last.ts).toISOString(), text: timeText(last.ts) }) : null,
        ),
      );
    }),
  );
}
