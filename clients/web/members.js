// A chat's members panel: who is in it and who is invited, with their role (the `members`
// op); an admin removes those below them (`kick`), members add people they know (`invite`:
// in a closed chat only admins may, and the server says so), and anyone leaves (`leave`).

import { alertBox, h } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { knownPeople, peoplePicker } from "./people_picker.js";

const ADMIN = 50; // the default level of kick and ban, and of a closed chat's inviting
const OWNER = 100;

export function membersPanel(ctx, roomId, onLeft) {
  const status = alertBox();
  const list = h("ul", { class: "members", "aria-labelledby": "members-title" });
  const adding = h("div", { class: "members-add" });
  const leave = h("button", { type: "button", class: "secondary", text: t("members.leave") });
  let members = [];

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
          removable
            ? h("button", {
                type: "button",
                class: "secondary small",
                text: t("members.remove"),
                "aria-label": t("members.remove_label", { name }),
                onclick: () => act("kick", { user_id: m.user_id }),
              })
            : null,
        );
      }),
    );
  }

  async function load() {
    try {
      const out = await ctx.session.request("members", { room_id: roomId });
      await ctx.people.load(out.members.map((m) => m.user_id));
      members = out.members.sort((a, b) =>
        ctx.people.name(a.user_id).localeCompare(ctx.people.name(b.user_id)),
      );
      render();
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
  return h(
    "div",
    { class: "members-panel" },
    h("h2", { id: "members-title", text: t("members.title") }),
    list,
    adding,
    status,
    leave,
  );
}
