// The admin's panels: "Доступы участников" (each capability for everyone and per person,
// call_permission) and "Сессионные залы" (plan at random or by hand, up to the daemon's
// limit, with a timer; open, move people, visit, message every room, close them all).

import { h } from "./dom.js";
import { t } from "./i18n.js";

export const CAPS = ["microphone", "camera", "screen", "chat", "whiteboard"];
// What students and parents may do unless an admin decides otherwise (PROTOCOL.md "Calls").
const DEFAULT_ALLOWED = new Set(["microphone", "camera", "chat"]);
export const MAX_ROOMS = 50; // calls.max_breakout_rooms (the default; the server says no beyond)

function toggle(label, checked, onchange) {
  return h("input", { type: "checkbox", "aria-label": label, checked, onchange });
}

export function permissionsPanel(ctx) {
  const state = ctx.state;
  const everyone = state.permissions.everyone || {};
  const people = state.participants.filter((p) => !state.admins.includes(p.user_id));
  const head = h(
    "tr",
    {},
    h("th", { scope: "col", text: t("perm.person") }),
    CAPS.map((cap) => h("th", { scope: "col", text: t(`perm.cap.${cap}`) })),
  );
  const allRow = h(
    "tr",
    { "data-user": "everyone" },
    h("th", { scope: "row", text: t("perm.everyone") }),
    CAPS.map((cap) => {
      const allowed = everyone[cap] ?? DEFAULT_ALLOWED.has(cap);
      const label = t("perm.toggle.label", { cap: t(`perm.cap.${cap}`), who: t("perm.everyone") });
      return h(
        "td",
        {},
        toggle(label, allowed, (event) =>
          ctx.request("call_permission", { capability: cap, allowed: event.target.checked }),
        ),
      );
    }),
  );
  const rows = people.map((p) => {
    const name = ctx.name(p.user_id);
    return h(
      "tr",
      { "data-user": p.user_id },
      h("th", { scope: "row", text: name }),
      CAPS.map((cap) => {
        const label = t("perm.toggle.label", { cap: t(`perm.cap.${cap}`), who: name });
        return h(
          "td",
          {},
          toggle(label, p.caps.includes(cap), (event) =>
            ctx.request("call_permission", {
              capability: cap,
              allowed: event.target.checked,
              user_id: p.user_id,
            }),
          ),
        );
      }),
    );
  });
  return h(
    "section",
    { class: "panel-body" },
    h("h2", { text: t("perm.title") }),
    h("table", { class: "perm" }, h("thead", {}, head), h("tbody", {}, allRow, rows)),
    people.length ? null : h("p", { class: "hint", text: t("perm.none") }),
  );
}

// -- breakout rooms ----------------------------------------------------------------------------

function clock(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString(document.documentElement.lang, {
    hour: "2-digit",
    minute: "2-digit",
  });
}

function assignable(state) {
  return state.participants.filter((p) => !state.admins.includes(p.user_id));
}

function roomOf(plan, userId) {
  return plan.rooms.find((r) => r.members.includes(userId))?.room_id ?? "main";
}

// A draft by hand: the plan's rooms with one person put into another room (or none).
function rehand(ctx, plan, userId, target) {
  const rooms = plan.rooms.map((r) => ({
    id: r.room_id,
    members: r.members.filter((m) => m !== userId),
  }));
  const room = rooms.find((r) => r.id === target);
  if (room) room.members.push(userId);
  const fields = { mode: "hand", rooms: rooms.map((r) => r.members) };
  if (plan.duration_ms) fields.duration_s = Math.round(plan.duration_ms / 1000);
  return ctx.request("breakout_plan", fields);
}

function roomSelect(ctx, plan, person, onchange) {
  const name = ctx.name(person.user_id);
  const current = roomOf(plan, person.user_id);
  const select = h(
    "select",
    { "aria-label": t("bo.assign.label", { name }) },
    h("option", { value: "main", text: t("call.room.main"), selected: current === "main" }),
    plan.rooms.map((r) =>
      h("option", {
        value: r.room_id,
        text: r.name || t("bo.room", { number: r.number }),
        selected: current === r.room_id,
      }),
    ),
  );
  select.addEventListener("change", () => onchange(select.value));
  return h("li", { "data-user": person.user_id }, h("span", { class: "who", text: name }), select);
}

function planForm(ctx) {
  const count = h("input", { type: "number", id: "bo-count", min: "1", max: String(MAX_ROOMS), value: "2" });
  const minutes = h("input", { type: "number", id: "bo-minutes", min: "1", max: "240", value: "10" });
  const random = h("input", { type: "radio", name: "bo-mode", id: "bo-random", value: "random", checked: true });
  const hand = h("input", { type: "radio", name: "bo-mode", id: "bo-hand", value: "hand" });
  const form = h(
    "form",
    { class: "bo-form" },
    h("div", { class: "field" }, h("label", { for: "bo-count", text: t("bo.count", { max: MAX_ROOMS }) }), count),
    h(
      "fieldset",
      {},
      h("legend", { text: t("bo.mode") }),
      h("span", { class: "choice" }, random, h("label", { for: "bo-random", text: t("bo.mode.random") })),
      h("span", { class: "choice" }, hand, h("label", { for: "bo-hand", text: t("bo.mode.hand") })),
    ),
    h("div", { class: "field" }, h("label", { for: "bo-minutes", text: t("bo.minutes") }), minutes),
    h("button", { type: "submit", text: t("bo.plan") }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const n = Math.min(MAX_ROOMS, Math.max(1, Number.parseInt(count.value, 10) || 1));
    const duration_s = Math.max(60, (Number.parseInt(minutes.value, 10) || 10) * 60);
    if (random.checked) ctx.request("breakout_plan", { mode: "random", room_count: n, duration_s });
    else {
      ctx.request("breakout_plan", { mode: "hand", rooms: Array.from({ length: n }, () => []), duration_s });
    }
  });
  return form;
}

function roomsList(ctx, plan, { running }) {
  return h(
    "ul",
    { class: "bo-rooms" },
    plan.rooms.map((r) => {
      const title = r.name || t("bo.room", { number: r.number });
      const members = r.members.map((u) => ctx.name(u)).join(", ") || t("bo.room.empty");
      const visit =
        running && ctx.isAdmin()
          ? h("button", {
              type: "button",
              class: "secondary",
              text: t("bo.visit"),
              "aria-label": t("bo.visit.label", { number: r.number }),
              onclick: () => ctx.request("breakout_visit", { room: r.room_id }),
            })
          : null;
      return h(
        "li",
        { "data-room": r.room_id },
        h("strong", { text: title }),
        h("span", { class: "members", text: `: ${members}` }),
        visit,
      );
    }),
  );
}

export function breakoutPanel(ctx) {
  const state = ctx.state;
  const plan = state.breakout;
  const parts = [h("h2", { text: t("bo.title") })];
  const people = assignable(state);
  const phase = plan ? plan.phase : "closed";

  if (phase === "closed") {
    if (plan) parts.push(h("p", { class: "hint", text: t("bo.phase.closed") }));
    if (people.length === 0) parts.push(h("p", { class: "hint", text: t("bo.no_students") }));
    parts.push(planForm(ctx));
  } else if (phase === "draft") {
    parts.push(h("p", { class: "hint", text: t("bo.phase.draft") }), roomsList(ctx, plan, { running: false }));
    parts.push(
      h(
        "ul",
        { class: "bo-assign" },
        people.map((p) => roomSelect(ctx, plan, p, (room) => rehand(ctx, plan, p.user_id, room))),
      ),
    );
    parts.push(
      h("button", { type: "button", text: t("bo.start"), onclick: () => ctx.request("breakout_start", {}) }),
      planForm(ctx),
    );
  } else {
    const key = phase === "closing" ? "bo.phase.closing" : "bo.phase.running";
    parts.push(h("p", { class: "hint", text: t(key, { time: clock(plan.ends_at_ms) }) }));
    parts.push(roomsList(ctx, plan, { running: true }));
    parts.push(
      h(
        "ul",
        { class: "bo-assign" },
        people.map((p) =>
          roomSelect(ctx, plan, p, (room) => ctx.request("breakout_move", { user_id: p.user_id, room })),
        ),
      ),
    );
    if (ctx.myRoom() !== "main") {
      parts.push(
        h("button", {
          type: "button",
          class: "secondary",
          text: t("bo.back"),
          onclick: () => ctx.request("breakout_visit", { room: "main" }),
        }),
      );
    }
    const text = h("input", { type: "text", id: "bo-text", maxlength: "1000" });
    const form = h(
      "form",
      { class: "bo-broadcast" },
      h("div", { class: "field" }, h("label", { for: "bo-text", text: t("bo.broadcast") }), text),
      h("button", { type: "submit", text: t("bo.broadcast.send") }),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      const out = await ctx.request("breakout_broadcast", { text: text.value.trim() });
      if (out) text.value = "";
    });
    parts.push(form);
    parts.push(
      h("button", {
        type: "button",
        class: "secondary",
        text: t("bo.close"),
        onclick: () => ctx.request("breakout_close", {}),
      }),
      h("button", {
        type: "button",
        class: "danger",
        text: t("bo.close_now"),
        onclick: () => ctx.request("breakout_close", { immediate: true }),
      }),
    );
  }
  return h("section", { class: "panel-body" }, parts);
}
