// One chat on screen: its history (paged back with `history`), live events, and what a
// person does with messages: send, reply, edit, delete, react, files, polls, typing. The
// timeline is kept by event id; edits, reactions, redactions and poll tallies are applied
// to the message they belong to, whichever arrives first.

import { alertBox, h } from "./dom.js";
import { blobUrl, download, sizeText, upload } from "./files.js";
import { currentLang, errorText, t } from "./i18n.js";
import { kindOf, timeText } from "./chats.js";
import { invitePanel } from "./invite.js";
import { membersPanel } from "./members.js";

const PAGE = 30;
const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉"];
const TYPING_TIMEOUT_MS = 6000;
const TYPING_REPEAT_MS = 4000;
const SHOWN_MEMBERSHIP = new Set(["join", "leave", "invite", "knock", "ban"]);

// The people an event names: its sender, and a member event's member. (Other state events'
// keys are no user ids: a `call` event's is the call id, which `profiles` would refuse.)
const peopleOf = (ev) => (ev.type === "member" ? [ev.sender, ev.state_key] : [ev.sender]);

// A membership change in words: who did it when it was someone else (an admin letting in,
// removing or withdrawing an invitation), and the reason given. What the journal's roster
// does (its account, PROTOCOL.md "Chats the roster makes") reads as the person's own.
function memberLine(ev, people) {
  const { membership, reason } = ev.content;
  const name = people.name(ev.state_key);
  if (ev.sender.startsWith("@journal-")) return t(`member.${membership}`, { name });
  const actor = people.name(ev.sender);
  const byOther = ev.sender !== ev.state_key;
  let text = t(`member.${membership}`, { name });
  if (byOther && membership === "leave") text = t("member.removed", { name, actor });
  if (byOther && membership === "join") text = t("member.admitted", { name, actor });
  return reason ? t("member.reason", { text, reason }) : text;
}

export class ChatView {
  constructor(ctx, roomId) {
    this.ctx = ctx; // {session, me, chats, people, navigate}
    this.roomId = roomId;
    this.events = new Map(); // event id -> event (messages and member lines shown)
    this.nodes = new Map(); // event id -> its <article>
    this.reactions = new Map(); // message id -> Map(key -> Map(reaction id -> sender))
    this.reactionOf = new Map(); // reaction id -> message id
    this.polls = new Map(); // message id -> poll_results
    this.thumbs = [];
    this.prev = undefined; // position for the next older page; null: none left
    this.replyTo = null;
    this.typingSent = 0;
    this.typingUsers = [];
    this.element = h("section", { class: "chat", "aria-labelledby": "chat-title" });
  }

  get room() {
    return this.ctx.chats.rooms.get(this.roomId);
  }

  async open() {
    this.header = h("div", { class: "chat-header" });
    this.panel = h("div", { class: "chat-panel" });
    this.olderButton = h("button", {
      type: "button",
      class: "secondary older",
      text: t("chat.older"),
      onclick: () => this.loadOlder(),
    });
    this.timeline = h("div", {
      class: "timeline",
      role: "log",
      "aria-label": t("chat.timeline"),
      tabindex: "0",
    });
    this.typingLine = h("p", { class: "typing", "aria-live": "polite" });
    this.status = alertBox();
    this.composer = this.makeComposer();
    this.element.replaceChildren(
      this.header,
      this.panel,
      h("div", { class: "scroller" }, this.olderButton, this.timeline),
      this.typingLine,
      this.status,
      this.composer,
    );
    this.timeline.parentElement.addEventListener("scroll", (event) => {
      if (event.target.scrollTop < 30 && this.prev) this.loadOlder();
    });
    this.renderHeader();
    if (!this.room || this.room.membership !== "join") {
      this.olderButton.hidden = true;
      this.composer.hidden = true;
      this.status.textContent = this.room ? t("chat.invited") : t("chat.not_member");
      if (this.room?.membership === "invite") {
        this.panel.replaceChildren(
          h("button", { type: "button", text: t("chat.accept"), onclick: () => this.acceptInvite() }),
        );
      }
      return;
    }
    await this.loadOlder(true);
  }

  async acceptInvite() {
    try {
      await this.ctx.session.request("join", { room_id: this.roomId });
      await this.ctx.chats.refresh();
      // Opened anew with nothing kept: the join itself may have come live meanwhile, into
      // the timeline being replaced.
      this.events.clear();
      this.nodes.clear();
      this.open();
    } catch (err) {
      this.status.textContent = errorText(err);
    }
  }

  destroy() {
    for (const url of this.thumbs) URL.revokeObjectURL(url);
    this.thumbs = [];
    if (this.typingSent) this.sendTyping(false);
  }

  renderHeader() {
    if (!this.header) return; // not opened yet
    const room = this.room;
    const name = room?.name || t("chat.unnamed");
    const kind = room ? kindOf(room) : "other";
    const calls = (room?.calls || []).map((call) =>
      h("a", {
        class: "button join-call",
        href: `/calls/${encodeURIComponent(call.call_id)}`,
        "aria-label": t("chat.call_join_label", { name: call.name || name }),
        text: t("chat.call_join"),
      }),
    );
    const parts = [
      h(
        "button",
        {
          type: "button",
          class: "link-button back",
          "aria-label": t("chat.back_label"),
          text: "←",
          onclick: () => this.ctx.navigate("/"),
        },
      ),
      h("h1", { id: "chat-title", tabindex: "-1", text: name }),
      h("span", { class: `badge kind-${kind}`, text: t(`kind.${kind}`) }),
      room ? h("span", { class: "hint", text: t("list.members", { count: room.members }) }) : null,
      ...calls,
      room?.membership === "join"
        ? [
            this.panelButton("members", "members.open", () =>
              membersPanel(this.ctx, this.roomId, () => this.ctx.navigate("/")),
            ),
            this.panelButton("invite", "invite.open"),
          ]
        : null,
    ];
    // replaceChildren would write a null as the text "null".
    this.header.replaceChildren(...parts.flat().filter(Boolean));
  }

  panelButton(which, key, make) {
    return h("button", {
      type: "button",
      class: "secondary",
      text: t(key),
      "aria-expanded": this.panel.dataset.open === which ? "true" : "false",
      onclick: () => this.togglePanel(which, make),
    });
  }

  togglePanel(which, make) {
    if (this.panel.dataset.open === which) {
      this.panel.dataset.open = "";
      this.panel.replaceChildren();
    } else {
      this.panel.dataset.open = which;
      this.panel.replaceChildren(
        make ? make() : invitePanel(this.roomId, () => this.togglePanel(which)),
      );
    }
    this.renderHeader();
  }

  // -- the timeline -----------------------------------------------------------------

  async loadOlder(first = false) {
    if (this.loading || this.prev === null) return;
    this.loading = true;
    this.olderButton.disabled = true;
    try {
      const fields = { room_id: this.roomId, limit: PAGE };
      if (this.prev !== undefined) fields.before = this.prev;
      const page = await this.ctx.session.request("history", fields);
      this.prev = page.prev;
      await this.ctx.people.load(page.events.flatMap(peopleOf));
      const scroller = this.timeline.parentElement;
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      const nodes = [];
      for (const ev of page.events) {
        const node = this.take(ev, false);
        if (node) nodes.push(node);
      }
      this.timeline.prepend(...nodes);
      if (first) this.scrollDown();
      else scroller.scrollTop = scroller.scrollHeight - fromBottom;
      if (first) this.markRead();
    } catch (err) {
      this.status.textContent = errorText(err);
    } finally {
      this.loading = false;
      this.olderButton.disabled = false;
      this.olderButton.hidden = this.prev === null;
    }
  }

  scrollDown() {
    const scroller = this.timeline.parentElement;
    scroller.scrollTop = scroller.scrollHeight;
  }

  markRead() {
    let newest = 0;
    for (const ev of this.events.values()) newest = Math.max(newest, ev.pos);
    if (newest) this.ctx.chats.markRead(this.roomId, newest);
  }

  // An event from history (live=false) or a push (live=true): returns a node to place for
  // a history page, or places it itself when live.
  take(ev, live) {
    if (this.events.has(ev.event_id)) return null;
    switch (ev.type) {
      case "message":
      case "member": {
        if (ev.type === "member" && !SHOWN_MEMBERSHIP.has(ev.content.membership)) return null;
        this.events.set(ev.event_id, ev);
        const node = this.render(ev);
        this.nodes.set(ev.event_id, node);
        if (live) {
          const scroller = this.timeline.parentElement;
          const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
          this.timeline.append(node);
          if (atBottom || ev.sender === this.ctx.me.user_id) this.scrollDown();
          if (ev.type === "message") this.markRead();
          return null;
        }
        return node;
      }
      case "reaction":
        if (!ev.redacted_by && ev.content.relates_to) {
          this.addReaction(ev.content.relates_to, ev.content.key, ev.event_id, ev.sender);
        }
        return null;
      case "redaction":
        if (live) this.redacted(ev.redacts, ev.event_id);
        return null;
      case "edit":
        if (live) this.edited(ev);
        return null;
      case "poll_close":
        if (live) this.pollClosed(ev.content.relates_to);
        return null;
      default:
        return null;
    }
  }

  apply(ev) {
    if (ev.type === "call" || ev.type === "name" || ev.type === "member") this.renderHeader();
    // Someone asked to join, was let in or left: the open members panel shows it at once.
    if (ev.type === "member" && this.panel?.dataset.open === "members") {
      this.panel.firstChild?.reload?.();
    }
    if (ev.type === "member" && ev.state_key === this.ctx.me.user_id) {
      if (ev.content.membership !== "join") this.composer.hidden = true;
    }
    // One at a time, in order: a redaction must never overtake the message it deletes.
    this.queue = (this.queue || Promise.resolve())
      .then(() => this.ctx.people.load(peopleOf(ev)))
      .then(() => this.take(ev, true))
      .catch((err) => console.error(err));
  }

  // After a gap in a resume: start the timeline again from the newest page.
  async reload() {
    this.events.clear();
    this.nodes.clear();
    this.reactions.clear();
    this.reactionOf.clear();
    this.timeline.replaceChildren();
    this.prev = undefined;
    await this.loadOlder(true);
  }

  // -- one message --------------------------------------------------------------------

  render(ev) {
    const people = this.ctx.people;
    if (ev.type === "member") {
      return h("p", { class: "system", "data-event-id": ev.event_id, text: memberLine(ev, people) });
    }
    const mine = ev.sender === this.ctx.me.user_id;
    const node = h("article", {
      class: mine ? "msg mine" : "msg",
      "data-event-id": ev.event_id,
      "aria-label": t("msg.label", { name: people.name(ev.sender), time: timeText(ev.ts) }),
    });
    this.fill(node, ev);
    return node;
  }

  fill(node, ev) {
    const people = this.ctx.people;
    const c = ev.content || {};
    const parts = [
      h(
        "div",
        { class: "meta" },
        h("span", { class: "sender", text: people.name(ev.sender) }),
        h("time", { datetime: new Date(ev.ts).toISOString(), text: timeText(ev.ts) }),
        c.edited ? h("span", { class: "edited", text: t("msg.edited") }) : null,
      ),
    ];
    if (ev.redacted_by) {
      parts.push(h("p", { class: "body deleted", text: t("msg.deleted") }));
      node.replaceChildren(...parts);
      return;
    }
    if (c.forwarded_from) {
      parts.push(
        h("p", {
          class: "forwarded",
          text: t("msg.forwarded", { name: people.name(c.forwarded_from.sender) }),
        }),
      );
    }
    if (c.reply_to) parts.push(this.quote(c.reply_to));
    if (c.poll) parts.push(this.pollBlock(ev));
    else if (typeof c.body === "string" && c.body) parts.push(h("p", { class: "body", text: c.body }));
    if (c.file && typeof c.file === "object") parts.push(this.fileBlock(c.file));
    parts.push(this.reactionRow(ev), this.actions(ev));
    node.replaceChildren(...parts);
  }

  quote(eventId) {
    const target = this.events.get(eventId);
    const text = target
      ? `${this.ctx.people.name(target.sender)}: ${target.redacted_by ? t("msg.deleted") : target.content.body || target.content.file?.name || ""}`
      : t("msg.reply_unknown");
    return h("blockquote", { class: "quote", "data-reply-to": eventId, text });
  }

  fileBlock(file) {
    const lang = currentLang();
    const block = h("div", { class: "file" });
    if (file.thumbnail) {
      const img = h("img", {
        class: "thumb",
        alt: t("file.preview", { name: file.name }),
        width: file.width && file.height ? String(Math.min(320, file.width)) : null,
      });
      block.append(img);
      blobUrl(file.id, true).then(
        (url) => {
          this.thumbs.push(url);
          img.src = url;
        },
        () => img.remove(),
      );
    }
    block.append(
      h("span", { class: "file-name", text: `${file.name} (${sizeText(file.size, lang)})` }),
      h("button", {
        type: "button",
        class: "secondary",
        "aria-label": t("file.download_label", { name: file.name }),
        text: t("file.download"),
        onclick: () => download(file).catch((err) => (this.status.textContent = errorText(err))),
      }),
    );
    return block;
  }

  // -- reactions ------------------------------------------------------------------------

  addReaction(messageId, key, reactionId, sender) {
    if (!this.reactions.has(messageId)) this.reactions.set(messageId, new Map());
    const keys = this.reactions.get(messageId);
    if (!keys.has(key)) keys.set(key, new Map());
    keys.get(key).set(reactionId, sender);
    this.reactionOf.set(reactionId, { messageId, key });
    this.refreshReactions(messageId);
  }

  refreshReactions(messageId) {
    const node = this.nodes.get(messageId);
    const ev = this.events.get(messageId);
    if (!node || !ev || ev.redacted_by) return;
    node.querySelector(".reactions")?.replaceWith(this.reactionRow(ev));
  }

  myReaction(messageId, key) {
    const senders = this.reactions.get(messageId)?.get(key);
    if (!senders) return null;
    for (const [id, sender] of senders) if (sender === this.ctx.me.user_id) return id;
    return null;
  }

  reactionRow(ev) {
    const row = h("div", { class: "reactions" });
    for (const [key, senders] of this.reactions.get(ev.event_id) || []) {
      if (senders.size === 0) continue;
      const mine = this.myReaction(ev.event_id, key);
      row.append(
        h("button", {
          type: "button",
          class: mine ? "reaction mine" : "reaction",
          "aria-pressed": mine ? "true" : "false",
          "aria-label": t("react.count_label", { key, count: senders.size }),
          "data-key": key,
          text: `${key} ${senders.size}`,
          onclick: () => this.toggleReaction(ev.event_id, key),
        }),
      );
    }
    return row;
  }

  async toggleReaction(messageId, key) {
    const mine = this.myReaction(messageId, key);
    try {
      if (mine) await this.ctx.session.request("redact", { room_id: this.roomId, event_id: mine });
      else await this.ctx.session.request("react", { room_id: this.roomId, event_id: messageId, key });
    } catch (err) {
      this.status.textContent = errorText(err);
    }
  }

  // -- edits, deletions ------------------------------------------------------------------

  edited(ev) {
    const target = this.events.get(ev.content.replaces);
    if (!target) return;
    target.content = { ...target.content, body: ev.content.body, edited: { event_id: ev.event_id, ts: ev.ts } };
    const node = this.nodes.get(target.event_id);
    if (node) this.fill(node, target);
  }

  redacted(targetId, redactionId) {
    const reaction = this.reactionOf.get(targetId);
    if (reaction) {
      this.reactions.get(reaction.messageId)?.get(reaction.key)?.delete(targetId);
      this.reactionOf.delete(targetId);
      this.refreshReactions(reaction.messageId);
      return;
    }
    const target = this.events.get(targetId);
    if (!target) return;
    target.content = {};
    target.redacted_by = redactionId;
    const node = this.nodes.get(targetId);
    if (node) this.fill(node, target);
    for (const [id, other] of this.events) {
      if (other.content?.reply_to === targetId) this.fill(this.nodes.get(id), other);
    }
  }

  actions(ev) {
    const mine = ev.sender === this.ctx.me.user_id;
    const room = this.room;
    const c = ev.content;
    const row = h("div", { class: "actions" });
    const reply = h("button", {
      type: "button",
      class: "link-button",
      text: t("msg.reply"),
      onclick: () => this.startReply(ev),
    });
    row.append(reply);
    for (const key of QUICK_REACTIONS) {
      row.append(
        h("button", {
          type: "button",
          class: "link-button react",
          "aria-label": t("react.label", { key }),
          text: key,
          onclick: () => this.toggleReaction(ev.event_id, key),
        }),
      );
    }
    if (mine && !c.poll && !c.forwarded_from) {
      row.append(
        h("button", { type: "button", class: "link-button", text: t("msg.edit"), onclick: () => this.startEdit(ev) }),
      );
    }
    if (mine || (room && room.power >= 50)) {
      row.append(
        h("button", {
          type: "button",
          class: "link-button danger",
          text: t("msg.delete"),
          onclick: () => this.askDelete(ev, row),
        }),
      );
    }
    return row;
  }

  askDelete(ev, row) {
    const yes = h("button", {
      type: "button",
      class: "danger-button",
      text: t("msg.delete_confirm"),
      onclick: async () => {
        try {
          await this.ctx.session.request("redact", { room_id: this.roomId, event_id: ev.event_id });
        } catch (err) {
          this.status.textContent = errorText(err);
          row.replaceWith(this.actions(ev));
        }
      },
    });
    const no = h("button", {
      type: "button",
      class: "secondary",
      text: t("common.cancel"),
      onclick: () => row.replaceWith(this.actions(ev)),
    });
    row.replaceChildren(h("span", { text: t("msg.delete_question") }), yes, no);
    yes.focus();
  }

  startEdit(ev) {
    const node = this.nodes.get(ev.event_id);
    const body = node.querySelector(".body");
    const input = h("textarea", { rows: "2", "aria-label": t("msg.edit_label") });
    input.value = ev.content.body || "";
    const form = h(
      "form",
      { class: "edit-form" },
      input,
      h("button", { type: "submit", text: t("common.save") }),
      h("button", { type: "button", class: "secondary", text: t("common.cancel"), onclick: () => this.fill(node, ev) }),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      try {
        await this.ctx.session.request("edit", { room_id: this.roomId, event_id: ev.event_id, body: text });
      } catch (err) {
        this.status.textContent = errorText(err);
      }
    });
    if (body) body.replaceWith(form);
    else node.append(form);
    input.focus();
  }

  startReply(ev) {
    this.replyTo = ev;
    const text = ev.content.body || ev.content.file?.name || "";
    this.replyBanner.replaceChildren(
      h("span", { text: t("compose.replying", { name: this.ctx.people.name(ev.sender), text }) }),
      h("button", {
        type: "button",
        class: "link-button",
        "aria-label": t("compose.reply_cancel_label"),
        text: "×",
        onclick: () => this.stopReply(),
      }),
    );
    this.replyBanner.hidden = false;
    this.input.focus();
  }

  stopReply() {
    this.replyTo = null;
    this.replyBanner.hidden = true;
    this.replyBanner.replaceChildren();
  }

  // -- polls --------------------------------------------------------------------------

  pollBlock(ev) {
    const poll = ev.content.poll;
    const block = h("div", { class: "poll", role: "group", "aria-label": t("poll.label", { question: poll.question }) });
    const results = this.polls.get(ev.event_id);
    if (!results) {
      this.ctx.session
        .request("poll_results", { room_id: this.roomId, event_id: ev.event_id })
        .then((out) => {
          this.polls.set(ev.event_id, out);
          this.refreshPoll(ev.event_id);
        })
        .catch(() => {});
    }
    const counts = results?.counts || poll.options.map(() => 0);
    const total = results?.total_voters || 0;
    const mine = new Set(results?.mine || []);
    const closed = results?.closed || false;
    block.append(h("p", { class: "poll-question", text: poll.question }));
    poll.options.forEach((option, index) => {
      const share = total ? Math.round((counts[index] * 100) / total) : 0;
      block.append(
        h(
          "button",
          {
            type: "button",
            class: mine.has(index) ? "poll-option chosen" : "poll-option",
            "aria-pressed": mine.has(index) ? "true" : "false",
            "aria-label": t("poll.option_label", { option, count: counts[index] }),
            disabled: closed,
            "data-option": String(index),
            onclick: () => this.vote(ev, index, mine),
          },
          h("span", { class: "poll-text", text: option }),
          h("span", { class: "poll-count", text: `${counts[index]} · ${share}%` }),
        ),
      );
    });
    const summary = [t("poll.voters", { count: total })];
    if (poll.multiple) summary.push(t("poll.multiple"));
    if (poll.anonymous) summary.push(t("poll.anonymous"));
    if (closed) summary.push(t("poll.closed"));
    block.append(h("p", { class: "hint poll-summary", text: summary.join(" · ") }));
    const canClose = ev.sender === this.ctx.me.user_id || (this.room?.power ?? 0) >= 50;
    if (!closed && canClose) {
      block.append(
        h("button", {
          type: "button",
          class: "secondary",
          text: t("poll.close"),
          onclick: () =>
            this.ctx.session
              .request("close_poll", { room_id: this.roomId, event_id: ev.event_id })
              .catch((err) => (this.status.textContent = errorText(err))),
        }),
      );
    }
    return block;
  }

  refreshPoll(eventId) {
    const ev = this.events.get(eventId);
    const node = this.nodes.get(eventId);
    if (ev && node && !ev.redacted_by) node.querySelector(".poll")?.replaceWith(this.pollBlock(ev));
  }

  async vote(ev, index, mine) {
    let choices = [index];
    if (ev.content.poll.multiple) {
      const next = new Set(mine);
      if (next.has(index)) next.delete(index);
      else next.add(index);
      if (next.size === 0) return;
      choices = [...next].sort((a, b) => a - b);
    }
    try {
      const out = await this.ctx.session.request("vote", {
        room_id: this.roomId,
        event_id: ev.event_id,
        choices,
      });
      this.polls.set(ev.event_id, out);
      this.refreshPoll(ev.event_id);
    } catch (err) {
      this.status.textContent = errorText(err);
    }
  }

  pollPush(push) {
    const known = this.polls.get(push.event_id) || { mine: [] };
    const next = { ...known, counts: push.counts, total_voters: push.total_voters, closed: push.closed };
    if (push.user_id === this.ctx.me.user_id && push.choices) next.mine = push.choices;
    this.polls.set(push.event_id, next);
    this.refreshPoll(push.event_id);
  }

  pollClosed(eventId) {
    const known = this.polls.get(eventId);
    if (known) known.closed = true;
    this.refreshPoll(eventId);
  }

  pollForm() {
    const question = h("input", { type: "text", maxlength: "300", required: true });
    const options = h("div", { class: "poll-options" });
    const box = alertBox();
    const addOption = () => {
      const n = options.children.length + 1;
      const input = h("input", { type: "text", maxlength: "100", name: "option" });
      options.append(
        h("div", { class: "field" }, h("label", { for: `poll-option-${n}`, text: t("poll.option_n", { n }) }), input),
      );
      input.id = `poll-option-${n}`;
      return input;
    };
    addOption();
    addOption();
    const multiple = h("input", { type: "checkbox", id: "poll-multiple" });
    const anonymous = h("input", { type: "checkbox", id: "poll-anonymous" });
    const form = h(
      "form",
      { class: "poll-form", novalidate: true, "aria-label": t("poll.create_title") },
      h("h2", { text: t("poll.create_title") }),
      h("div", { class: "field" }, h("label", { for: "poll-question", text: t("poll.question") }), question),
      options,
      h("button", {
        type: "button",
        class: "secondary",
        text: t("poll.add_option"),
        onclick: () => {
          if (options.children.length < 12) addOption().focus();
        },
      }),
      h("p", {}, h("span", { class: "choice" }, multiple, h("label", { for: "poll-multiple", text: t("poll.multiple_label") }))),
      h("p", {}, h("span", { class: "choice" }, anonymous, h("label", { for: "poll-anonymous", text: t("poll.anonymous_label") }))),
      box,
      h("button", { type: "submit", text: t("poll.create") }),
      h("button", { type: "button", class: "secondary", text: t("common.cancel"), onclick: () => this.togglePanel("poll") }),
    );
    question.id = "poll-question";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const texts = [...options.querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
      try {
        await this.ctx.session.request("poll", {
          room_id: this.roomId,
          question: question.value.trim(),
          options: texts,
          multiple: multiple.checked,
          anonymous: anonymous.checked,
        });
        this.togglePanel("poll");
      } catch (err) {
        box.textContent = errorText(err);
      }
    });
    setTimeout(() => question.focus(), 0);
    return form;
  }

  // -- typing ---------------------------------------------------------------------------

  typing(push) {
    this.typingUsers = push.user_ids.filter((id) => id !== this.ctx.me.user_id);
    this.ctx.people.load(this.typingUsers).then(() => {
      const names = this.typingUsers.map((id) => this.ctx.people.name(id));
      this.typingLine.textContent = names.length ? t("chat.typing", { names: names.join(", ") }) : "";
    });
  }

  sendTyping(on) {
    const now = Date.now();
    if (on && now - this.typingSent < TYPING_REPEAT_MS) return;
    this.typingSent = on ? now : 0;
    const fields = { room_id: this.roomId, typing: on };
    if (on) fields.timeout_ms = TYPING_TIMEOUT_MS;
    this.ctx.session.request("typing", fields).catch(() => {});
  }

  // -- the composer -------------------------------------------------------------------------

  makeComposer() {
    this.input = h("textarea", {
      id: "compose",
      rows: "2",
      maxlength: "16000",
      placeholder: t("compose.placeholder"),
    });
    this.replyBanner = h("div", { class: "reply-banner", hidden: true });
    const file = h("input", { type: "file", id: "attach", class: "visually-hidden" });
    const form = h(
      "form",
      { class: "composer", novalidate: true },
      this.replyBanner,
      h("label", { for: "compose", class: "visually-hidden", text: t("compose.label") }),
      this.input,
      h(
        "div",
        { class: "composer-buttons" },
        // The input inside its label: the label looks like a button and shows the focus.
        h("label", { class: "button secondary" }, t("compose.attach"), file),
        h("button", {
          type: "button",
          class: "secondary",
          text: t("poll.open"),
          onclick: () => this.togglePanel("poll", () => this.pollForm()),
        }),
        h("button", { type: "submit", text: t("compose.send") }),
      ),
    );
    this.input.addEventListener("input", () => {
      if (this.input.value.trim()) this.sendTyping(true);
      else if (this.typingSent) this.sendTyping(false);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape" && this.replyTo) {
        this.stopReply();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = this.input.value.trim();
      if (body) this.send({ body });
    });
    file.addEventListener("change", async () => {
      const chosen = file.files[0];
      file.value = "";
      if (!chosen) return;
      this.status.textContent = t("file.uploading", { name: chosen.name });
      try {
        const record = await upload(chosen);
        const content = { file: { id: record.id } };
        const body = this.input.value.trim();
        if (body) content.body = body;
        await this.send(content);
        this.status.textContent = "";
      } catch (err) {
        this.status.textContent = errorText(err);
      }
    });
    return form;
  }

  async send(content) {
    if (this.replyTo) content.reply_to = this.replyTo.event_id;
    const text = this.input.value;
    this.input.value = "";
    this.stopReply();
    if (this.typingSent) this.sendTyping(false);
    try {
      await this.ctx.session.request("send", { room_id: this.roomId, content });
      this.status.textContent = "";
    } catch (err) {
      if (!this.input.value) this.input.value = text;
      this.status.textContent = errorText(err);
    }
  }
}
