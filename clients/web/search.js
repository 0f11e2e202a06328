// Message search (the `search` op): a query box and the hits, newest first, each with its
// snippet (the matched words marked) and a link to its chat.

import { alertBox, h } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { timeText } from "./chats.js";

// The snippet with its highlights as <mark> elements, built from text nodes only.
function snippet(s) {
  const text = [...(s?.text || "")]; // code points, as the server counts them
  const out = h("p", { class: "snippet" });
  let at = 0;
  for (const [start, end] of s?.highlights || []) {
    if (start > at) out.append(text.slice(at, start).join(""));
    out.append(h("mark", { text: text.slice(start, end).join("") }));
    at = end;
  }
  if (at < text.length) out.append(text.slice(at).join(""));
  return out;
}

// ctx: {session, chats, people, navigate}
export function searchView(container, ctx) {
  const input = h("input", { type: "search", id: "search-query", maxlength: "500", autocomplete: "off" });
  const box = alertBox();
  const results = h("ul", { class: "search-results", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "secondary", hidden: true, text: t("search.more") });
  let next = null;
  let query = "";
  const heading = h("h1", { tabindex: "-1", text: t("search.title") });
  const form = h(
    "form",
    { role: "search", class: "search-form" },
    h("label", { for: "search-query", text: t("search.label") }),
    input,
    h("button", { type: "submit", text: t("search.submit") }),
  );
  const run = async (before) => {
    const fields = { query, limit: 20 };
    if (before) fields.before = before;
    try {
      const out = await ctx.session.request("search", fields);
      await ctx.people.load(out.results.map((r) => r.event.sender));
      if (!before) results.replaceChildren();
      if (!before && out.results.length === 0) {
        results.append(h("li", { class: "hint", text: t("search.none") }));
      }
      for (const hit of out.results) results.append(item(hit, ctx));
      next = out.next;
      more.hidden = next === null;
      box.textContent = "";
    } catch (err) {
      box.textContent = errorText(err);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    query = input.value.trim();
    if (query) run(null);
  });
  more.addEventListener("click", () => run(next));
  container.replaceChildren(h("section", { class: "search" }, heading, form, box, results, more));
  input.focus();
}

function item(hit, ctx) {
  const ev = hit.event;
  const room = ctx.chats.rooms.get(ev.room_id);
  const href = `/chats/${encodeURIComponent(ev.room_id)}`;
  return h(
    "li",
    { "data-event-id": ev.event_id },
    h(
      "a",
      {
        href,
        onclick: (event) => {
          event.preventDefault();
          ctx.navigate(href);
        },
      },
      h("span", { class: "chat-name", text: room?.name || t("chat.unnamed") }),
      " · ",
      h("span", { class: "sender", text: ctx.people.name(ev.sender) }),
      " · ",
      h("time", { datetime: new Date(ev.ts).toISOString(), text: timeText(ev.ts) }),
    ),
    snippet(hit.snippet),
  );
}
