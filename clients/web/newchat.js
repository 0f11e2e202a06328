// A chat made by hand in the messenger (R11): a name, a topic, open or closed (a closed chat
// leaves inviting, pinning and its settings to its admins), and members now or none; people
// are invited later by link or QR code ("Пригласить" in the chat) or from "Участники".

import { alertBox, busy, field, h } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { knownPeople, peoplePicker } from "./people_picker.js";

export function newChatView(pane, ctx) {
  const name = h("input", { type: "text", required: true, maxlength: "255", autocomplete: "off" });
  const topic = h("input", { type: "text", maxlength: "1024", autocomplete: "off" });
  const closed = h("input", { type: "checkbox" });
  const status = alertBox();
  const pickerSlot = h("div", {}, h("p", { class: "hint", text: t("picker.loading") }));
  let picker = null;
  const form = h(
    "form",
    { class: "new-chat", novalidate: true },
    h("h1", { id: "new-chat-title", tabindex: "-1", text: t("newchat.title") }),
    field("new-chat-name", t("newchat.name"), name),
    field("new-chat-topic", t("newchat.topic"), topic),
    h(
      "div",
      { class: "field" },
      h("label", {}, closed, " ", t("newchat.closed")),
      h("p", { class: "hint", text: t("newchat.closed_hint") }),
    ),
    pickerSlot,
    h("p", { class: "hint", text: t("newchat.later") }),
    status,
    h("button", { type: "submit", text: t("newchat.create") }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = name.value.trim();
    if (!title) {
      status.textContent = t("newchat.name_needed");
      name.focus();
      return;
    }
    busy(form, async () => {
      try {
        const out = await ctx.session.request("create_room", {
          name: title,
          topic: topic.value.trim() || undefined,
          closed: closed.checked,
          invite: picker ? picker.chosen() : [],
        });
        await ctx.chats.refresh();
        ctx.navigate(`/chats/${encodeURIComponent(out.room_id)}`);
      } catch (err) {
        status.textContent = errorText(err);
      }
    });
  });
  pane.replaceChildren(
    h("section", { class: "new-chat-view", "aria-labelledby": "new-chat-title" }, form),
  );
  knownPeople(ctx).then(
    (ids) => {
      picker = peoplePicker(ids, ctx.people, t("newchat.members"));
      pickerSlot.replaceChildren(picker.element);
    },
    (err) => pickerSlot.replaceChildren(h("p", { role: "alert", text: errorText(err) })),
  );
  name.focus();
}
