// The participants panel ("Участники"): who is in the call with their role, microphone,
// camera and screen, the raised-hands queue in the order raised, and for admins the waiting
// room (admit, refuse), lowering hands, force mute and removing someone.

import { h } from "./dom.js";
import { t } from "./i18n.js";

function roleText(role) {
  return t(`role.${role}`);
}

function mediaText(p) {
  const on = ["audio", "video", "screen"].filter((k) => p[k]).map((k) => t(`media.${k}`));
  return on.length ? t("media.on", { what: on.join(", ") }) : "";
}

export function peoplePanel(ctx) {
  const state = ctx.state;
  const admin = ctx.isAdmin();
  const hands = state.hands || [];
  const parts = [h("h2", { text: t("people.title") })];

  if (admin && state.waiting.length) {
    parts.push(
      h("h3", { text: t("people.waiting") }),
      h(
        "ul",
        { class: "people waiting", "aria-label": t("people.waiting") },
        state.waiting.map((w) => {
          const name = ctx.name(w.user_id);
          return h(
            "li",
            { "data-user": w.user_id },
            h("span", { class: "who", text: name }),
            h("button", {
              type: "button",
              text: t("people.admit"),
              "aria-label": t("people.admit.label", { name }),
              onclick: () => ctx.request("call_admit", { user_id: w.user_id }),
            }),
            h("button", {
              type: "button",
              class: "secondary",
              text: t("people.refuse"),
              "aria-label": t("people.refuse.label", { name }),
              onclick: () => ctx.request("call_refuse", { user_id: w.user_id }),
            }),
          );
        }),
      ),
      h("button", {
        type: "button",
        class: "secondary",
        text: t("people.admit_all"),
        onclick: () => ctx.request("call_admit", {}),
      }),
    );
  }

  parts.push(h("h3", { text: t("people.hands") }));
  if (hands.length === 0) parts.push(h("p", { class: "hint", text: t("people.hands.none") }));
  else {
    parts.push(
      h(
        "ol",
        { class: "people hands", "aria-label": t("people.hands") },
        hands.map((user) => {
          const name = ctx.name(user);
          const mine = user === ctx.me;
          return h(
            "li",
            { "data-user": user },
            h("span", { class: "who", text: name }),
            admin || mine
              ? h("button", {
                  type: "button",
                  class: "secondary",
                  text: t("people.lower"),
                  "aria-label": t("people.lower.label", { name }),
                  onclick: () => ctx.request("call_hand", { raised: false, user_id: user }),
                })
              : null,
          );
        }),
      ),
    );
    if (admin) {
      parts.push(
        h("button", {
          type: "button",
          class: "secondary",
          text: t("people.lower_all"),
          onclick: () => ctx.request("call_lower_hands", {}),
        }),
      );
    }
  }

  parts.push(h("h3", { text: t("people.count", { count: state.participants.length }) }));
  parts.push(
    h(
      "ul",
      { class: "people present", "aria-label": t("people.title") },
      state.participants.map((p) => {
        const name = ctx.name(p.user_id);
        const isAdmin = state.admins.includes(p.user_id);
        const label = p.user_id === ctx.me ? `${name} (${t("call.you")})` : name;
        const actions = [];
        if (admin && !isAdmin && p.user_id !== ctx.me) {
          actions.push(
            h("button", {
              type: "button",
              class: "secondary",
              text: t("people.mute"),
              "aria-label": t("people.mute.label", { name }),
              disabled: !p.audio,
              onclick: () => ctx.request("call_mute", { user_id: p.user_id, force: true }),
            }),
            h("button", {
              type: "button",
              class: "danger",
              text: t("people.remove"),
              "aria-label": t("people.remove.label", { name }),
              onclick: () => ctx.request("call_remove", { user_id: p.user_id }),
            }),
          );
        }
        return h(
          "li",
          { "data-user": p.user_id },
          h("span", { class: "who", text: label }),
          h("span", { class: "role", text: isAdmin ? t("role.admin") : roleText(p.role) }),
          h("span", { class: "media", text: mediaText(p) }),
          hands.includes(p.user_id) ? h("span", { class: "hand", text: t("people.hand_raised") }) : null,
          p.room !== "main" ? h("span", { class: "room", text: ctx.roomLabel(p.room) }) : null,
          ...actions,
        );
      }),
    ),
  );
  if (admin) {
    parts.push(
      h("button", {
        type: "button",
        class: "secondary",
        text: t("people.mute_all"),
        onclick: () => ctx.request("call_mute", { force: true }),
      }),
    );
  }
  return h("section", { class: "panel-body" }, parts);
}
