// Choosing people to add to a chat: everyone the user shares a chat with (the `members` of
// their chats; a school's space has no global directory, R4), filtered by name as one types.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const MAX_ROOMS_READ = 50; // chats whose members are read to find people one knows

// The user ids of the people in the user's joined chats (not the user, not `except`),
// sorted by name, their names loaded.
export async function knownPeople(ctx, except = new Set()) {
  const rooms = [...ctx.chats.rooms.values()]
    .filter((room) => room.membership === "join")
    .slice(0, MAX_ROOMS_READ);
  const lists = await Promise.all(
    rooms.map((room) =>
      ctx.session.request("members", { room_id: room.room_id }).catch(() => ({ members: [] })),
    ),
  );
  const ids = new Set();
  for (const list of lists) {
    for (const m of list.members) {
      if (m.membership === "join" && m.user_id !== ctx.me.user_id && !except.has(m.user_id)) {
        ids.add(m.user_id);
      }
    }
  }
  await ctx.people.load([...ids]);
  return [...ids].sort((a, b) => ctx.people.name(a).localeCompare(ctx.people.name(b)));
}

// A fieldset of checkboxes, one per person, with a name filter; chosen() lists the ticked.
export function peoplePicker(ids, people, legend) {
  const chosen = new Set();
  const rows = ids.map((id) => {
    const box = h("input", {
      type: "checkbox",
      onchange: (event) => (event.target.checked ? chosen.add(id) : chosen.delete(id)),
    });
    return { name: people.name(id), row: h("li", {}, h("label", {}, box, " ", people.name(id))) };
  });
  const filter = h("input", {
    type: "search",
    class: "picker-filter",
    "aria-label": t("picker.filter"),
    placeholder: t("picker.filter"),
    oninput: () => {
      const needle = filter.value.trim().toLocaleLowerCase();
      for (const { name, row } of rows) row.hidden = !name.toLocaleLowerCase().includes(needle);
    },
  });
  const element = h(
    "fieldset",
    { class: "picker" },
    h("legend", { text: legend }),
    rows.length ? filter : h("p", { class: "hint", text: t("picker.nobody") }),
    rows.length ? h("ul", {}, rows.map((r) => r.row)) : null,
  );
  return { element, chosen: () => [...chosen] };
}
