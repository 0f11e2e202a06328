// A chat's members panel: who is in it and who is invited, with their role (the `members`
// op); the requests to join made through an invite link that needs approval (`knocks`,
// shown to those who may invite: accepted or refused); an admin removes those below them
// (`kick`), members add people they know (`invite`: in a closed chat only admins may, and
// the server says so), and anyone leaves (`leave`). For the admins of a chat made by hand
// (R11): its name, description and whether it is closed. `element.reload()` reads it anew.

import { alertBox, field, h } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { knownPeople, peoplePicker } from "./people_picker.js";

const ADMIN = 50; // the default level of kick and ban, and of a closed chat's inviting
const OWNER = 100;

export function membersPanel(ctx, roomId, onLeft) {
  const status = alertBox();
  const list = h("ul", { class: "members", "aria-labelledby": "members-title" });
  const knocks = h("div", { class: "knocks" });
  const adding = h("div", { class: "members-add" });
  const leave = h("button", { type: "button", class: "secondary", text: t("members.leave") });
  let members = [];

  // A button doing `op` to one person: its text is members.KEY, its name members.KEY_label.
  function actButton(op, userId, name, key, cls = "secondary small") {
    return h("button", {
      type: "button",
      class: cls,
      text: t(`members.${key}`),
      "aria-label": t(`members.${key}_label`, { name }),
      onclick: () => act(op, { user_id: userId }),
    });
  }

  function role(m) {
    if (m.membership === "invite") return t("members.invited");
    if (m.power >= OWNER) return t("members.owner");
    return m.power >= ADMIN ? t("members.admin") : "";
  }

  function render() {
    const mine = ctx.chats.rooms.get(roomId)?.power ?? 0;
    list.replaceChildren(
      ...members.map((m) => {
        const name = ctx.people.name(m.user_id);
        const removable = m.user_id !== ctx.me.user_id && mine >= ADMIN && m.power < mine;
        return h(
          "li",
          {},
          h("span", { class: "member-name", text: name }),
          role(m) ? h("span", { class: "badge", text: role(m) }) : null,
          removable ? actButton("kick", m.user_id, name, "remove") : null,
        );
      }),
    );
  }

  function renderKnocks(asking) {
    if (!asking.length) {
      knocks.replaceChildren();
      return;
    }
    knocks.replaceChildren(
      h("h3", { id: "knocks-title", text: t("members.knocks") }),
      h(
        "ul",
        { class: "members", "aria-labelledby": "knocks-title" },
        asking.map((k) => {
          const name = ctx.people.name(k.user_id);
          return h(
            "li",
            {},
            h("span", { class: "member-name", text: name }),
            actButton("accept_knock", k.user_id, name, "accept", "small"),
            actButton("refuse_knock", k.user_id, name, "refuse"),
          );
        }),
      ),
    );
  }

  async function load() {
    try {
      const out = await ctx.session.request("members", { room_id: roomId });
      // Only those at the chat's invite level may see the requests; for others, none.
      const asked = await ctx.session
        .request("knocks", { room_id: roomId })
        .catch(() => ({ knocks: [] }));
      await ctx.people.load([...out.members, ...asked.knocks].map((m) => m.user_id));
      members = out.members.sort((a, b) =>
        ctx.people.name(a.user_id).localeCompare(ctx.people.name(b.user_id)),
      );
      render();
      renderKnocks(asked.knocks);
    } catch (err) {
      status.textContent = errorText(err);
    }
  }

  async function act(op, fields) {
    status.textContent = "";
    try {
      await ctx.session.request(op, { room_id: roomId, ...fields });
      await ctx.chats.refresh();
      await load();
      return true;
    } catch (err) {
      status.textContent = errorText(err);
      return false;
    }
  }

  async function chooseToAdd() {
    adding.replaceChildren(h("p", { class: "hint", text: t("picker.loading") }));
    const ids = await knownPeople(ctx, new Set(members.map((m) => m.user_id)));
    const picker = peoplePicker(ids, ctx.people, t("members.add_title"));
    const send = h("button", {
      type: "button",
      text: t("members.invite"),
      onclick: async () => {
        send.disabled = true;
        for (const userId of picker.chosen()) {
          if (!(await act("invite", { user_id: userId }))) break;
        }
        send.disabled = false;
        if (!status.textContent) adding.replaceChildren(addButton);
      },
    });
    adding.replaceChildren(picker.element, send);
  }

  const addButton = h("button", {
    type: "button",
    class: "secondary",
    text: t("members.add"),
    onclick: () => chooseToAdd(),
  });
  adding.replaceChildren(addButton);

  leave.addEventListener("click", async () => {
    if (leave.dataset.confirm !== "yes") {
      leave.dataset.confirm = "yes";
      leave.textContent = t("members.leave_confirm");
      return;
    }
    try {
      await ctx.session.request("leave", { room_id: roomId });
      await ctx.chats.refresh();
      onLeft();
    } catch (err) {
      status.textContent = errorText(err);
    }
  });

  load();
  const element = h(
    "div",
    { class: "members-panel" },
    settings(ctx, roomId),
    knocks,
    h("h2", { id: "members-title", text: t("members.title") }),
    list,
    adding,
    status,
    leave,
  );
  element.reload = load;
  return element;
}

// A hand-made chat's settings, for its admins (the journal names its own chats): name and
// description (`state`), and, for those who may change power levels, closed or open
// (`set_closed`).
function settings(ctx, roomId) {
  const room = ctx.chats.rooms.get(roomId);
  if (!room || room.chat || room.power < ADMIN) return null;
  const status = alertBox();
  const saved = h("p", { role: "status", class: "hint" });
  const name = h("input", { type: "text", maxlength: "255", value: room.name || "" });
  const topic = h("input", { type: "text", maxlength: "1024", value: room.topic || "" });
  const closed = h("input", { type: "checkbox", checked: room.closed });
  const form = h(
    "form",
    { class: "chat-settings", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title", text: t("settings.title") }),
    field("settings-name", t("newchat.name"), name),
    field("settings-topic", t("newchat.topic"), topic),
    room.power >= OWNER
      ? h("div", { class: "field" }, h("label", {}, closed, " ", t("newchat.closed")))
      : null,
    status,
    saved,
    h("button", { type: "submit", class: "secondary", text: t("settings.save") }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = saved.textContent = "";
    const now = ctx.chats.rooms.get(roomId) || room;
    const title = name.value.trim();
    if (!title) {
      status.textContent = t("newchat.name_needed");
      return;
    }
    const writes = [];
    if (title !== (now.name || "")) writes.push(["state", { type: "name", content: { name: title } }]);
    const about = topic.value.trim();
    if (about !== (now.topic || "")) writes.push(["state", { type: "topic", content: { topic: about } }]);
    if (room.power >= OWNER && closed.checked !== Boolean(now.closed)) {
      writes.push(["set_closed", { closed: closed.checked }]);
    }
    try {
      for (const [op, fields] of writes) await ctx.session.request(op, { room_id: roomId, ...fields });
      await ctx.chats.refresh();
      saved.textContent = t("settings.saved");
    } catch (err) {
      status.textContent = errorText(err);
    }
  });
  return form;
}
