// The call's chat panel: the messages of the chat of the room you are in (the call's own
// chat, or your breakout room's), read with `history`, kept up to date from `ev` pushes,
// and a form to send. Messages are shown as text only.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const PAGE = 100;

export class CallChat {
  constructor(ctx) {
    this.ctx = ctx;
    this.roomId = null;
    this.events = []; // messages of roomId, oldest first
    this.loading = null;
    this.list = null; // the <ol> while the panel is shown
    ctx.session.on("ev", (event) => this._onEvent(event));
  }

  // The chat of the room I am in now.
  currentRoom() {
    const { state } = this.ctx;
    if (!state) return null;
    const room = this.ctx.myRoom();
    if (room !== "main" && state.breakout) {
      const found = state.breakout.rooms.find((r) => r.room_id === room);
      if (found?.chat_room_id) return found.chat_room_id;
    }
    return state.room_id;
  }

  async sync() {
    const roomId = this.currentRoom();
    if (!roomId || roomId === this.roomId) return;
    this.roomId = roomId;
    this.events = [];
    const loading = this.ctx.session.request("history", { room_id: roomId, limit: PAGE });
    this.loading = loading;
    try {
      const page = await loading;
      if (this.loading !== loading) return;
      const live = this.events;
      const seen = new Set(page.events.map((e) => e.event_id));
      this.events = [...page.events.filter(isMessage), ...live.filter((e) => !seen.has(e.event_id))];
    } catch {
      // Not joined to it (yet): the membership event brings it, or the next sync.
      this.roomId = null;
    }
    this._redraw();
  }

  _onEvent(event) {
    if (event.room_id !== this.roomId) {
      if (event.type === "member" && event.state_key === this.ctx.me) this.sync();
      return;
    }
    if (!isMessage(event)) return;
    if (this.events.some((e) => e.event_id === event.event_id)) return;
    this.events.push(event);
    this._redraw();
    this.ctx.onChatMessage?.(event);
  }

  _line(event) {
    const content = event.content || {};
    const text = content.body ?? (content.file ? t("chat.file", { name: content.file.name || "" }) : "");
    return h(
      "li",
      { class: "msg", "data-event": event.event_id },
      h("span", { class: "who", text: this.ctx.name(event.sender) }),
      h("span", { class: "what", text }),
    );
  }

  _redraw() {
    if (!this.list) return;
    if (this.events.length === 0) {
      this.list.replaceChildren(h("li", { class: "hint", text: t("chat.empty") }));
    } else {
      this.list.replaceChildren(...this.events.map((e) => this._line(e)));
      this.list.scrollTop = this.list.scrollHeight;
    }
  }

  panel() {
    const ctx = this.ctx;
    this.sync();
    const room = ctx.myRoom();
    const number = ctx.roomNumber(room);
    const title = room === "main" ? t("chat.room.main") : t("chat.room.breakout", { number });
    this.list = h("ol", { class: "chat-list", "aria-live": "polite", "aria-label": title });
    this._redraw();
    const input = h("input", {
      type: "text",
      id: "chat-input",
      autocomplete: "off",
      maxlength: "4000",
      "aria-label": t("chat.message"),
      placeholder: t("chat.message"),
    });
    const allowed = ctx.myCaps().includes("chat");
    const form = h(
      "form",
      { class: "chat-form" },
      input,
      h("button", { type: "submit", text: t("chat.send"), disabled: !allowed }),
    );
    input.disabled = !allowed;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = input.value.trim();
      if (!body || !this.roomId) return;
      input.value = "";
      const ok = await ctx.request("send", { room_id: this.roomId, content: { body } }, false);
      if (!ok) input.value = body;
      input.focus();
    });
    return h(
      "section",
      { class: "panel-body" },
      h("h2", { text: title }),
      allowed ? null : h("p", { class: "hint", text: t("chat.muted") }),
      this.list,
      form,
    );
  }
}

function isMessage(event) {
  return event.type === "message" && !event.redacted_by;
}
