// Invite links (R12): making one for a chat and showing it with its QR code, and the
// "Присоединиться" screen that an invite URL (/join/CODE -> /#join=CODE) leads to.

import { call } from "./api.js";
import { alertBox, h } from "./dom.js";
import { errorText, t } from "./i18n.js";

const CODE = /^[A-Za-z0-9_-]{1,64}$/;

export function validCode(code) {
  return CODE.test(code || "");
}

// The panel under a chat's header: a button that makes a link, then the link and its QR.
export function invitePanel(roomId, onClose) {
  const box = alertBox();
  const result = h("div", { class: "invite-result" });
  const approval = h("input", { type: "checkbox", id: "invite-approval" });
  const make = h("button", {
    type: "button",
    text: t("invite.create"),
    onclick: async () => {
      make.disabled = true;
      const body = approval.checked ? { approval: true } : {};
      const res = await call("POST", `/v1/rooms/${encodeURIComponent(roomId)}/invite-links`, body);
      make.disabled = false;
      if (!res.ok) {
        box.textContent = errorText(res.body.error);
        return;
      }
      box.textContent = "";
      result.replaceChildren(...shownLink(res.body));
      result.querySelector("input")?.focus();
    },
  });
  return h(
    "section",
    { class: "invite-panel", "aria-labelledby": "invite-title" },
    h("h2", { id: "invite-title", text: t("invite.title") }),
    h("p", { class: "hint", text: t("invite.hint") }),
    h("p", {}, h("span", { class: "choice" }, approval, h("label", { for: "invite-approval", text: t("invite.approval") }))),
    make,
    h("button", { type: "button", class: "secondary", text: t("common.close"), onclick: onClose }),
    box,
    result,
  );
}

function shownLink(link) {
  const url = h("input", { type: "text", id: "invite-url", readonly: true, value: link.url });
  const copied = h("span", { class: "hint", role: "status" });
  // Same-origin path for the picture, whatever public address the link names.
  const qr = `/v1/invites/${encodeURIComponent(link.code)}/qr.svg`;
  return [
    h("div", { class: "field" }, h("label", { for: "invite-url", text: t("invite.url") }), url),
    h(
      "p",
      {},
      h("button", {
        type: "button",
        class: "secondary",
        text: t("invite.copy"),
        onclick: async () => {
          url.select();
          try {
            await navigator.clipboard.writeText(link.url);
            copied.textContent = t("invite.copied");
          } catch {
            copied.textContent = t("invite.copy_by_hand");
          }
        },
      }),
      copied,
    ),
    h(
      "figure",
      { class: "qr-figure" },
      h("img", { class: "qr", src: qr, alt: t("invite.qr_alt"), width: "200", height: "200" }),
      h(
        "figcaption",
        {},
        h("a", {
          href: `/v1/invites/${encodeURIComponent(link.code)}/qr.png`,
          download: "qr.png",
          text: t("invite.qr_png"),
        }),
      ),
    ),
  ];
}

function joinError(error) {
  return error.code === "not_found" ? t("join.not_found") : errorText(error);
}

// The join screen: what the link leads to, and the button. onJoined(room id) when in.
export async function joinView(container, code, onJoined) {
  const box = alertBox();
  const heading = h("h1", { tabindex: "-1", text: t("join.title") });
  container.replaceChildren(h("section", { class: "join" }, heading, h("p", { text: t("join.loading") })));
  heading.focus();
  const res = await call("GET", `/v1/invites/${encodeURIComponent(code)}`);
  if (!res.ok) {
    container.replaceChildren(
      h("section", { class: "join" }, heading, h("p", { role: "alert", text: joinError(res.body.error) })),
    );
    return;
  }
  const preview = res.body;
  const button = h("button", {
    type: "button",
    text: t("join.submit"),
    onclick: async () => {
      button.disabled = true;
      const out = await call("POST", `/v1/invites/${encodeURIComponent(code)}/join`);
      button.disabled = false;
      if (!out.ok) {
        box.textContent = joinError(out.body.error);
        return;
      }
      if (out.body.membership === "knock") {
        box.textContent = "";
        status.textContent = t("join.knocked");
        button.hidden = true;
        return;
      }
      onJoined(out.body.room_id);
    },
  });
  const status = h("p", { role: "status" });
  container.replaceChildren(
    h(
      "section",
      { class: "join" },
      heading,
      h("p", { class: "join-name", text: preview.name || t("chat.unnamed") }),
      h("p", { text: t("list.members", { count: preview.members }) }),
      preview.approval ? h("p", { class: "hint", text: t("join.approval") }) : null,
      button,
      box,
      status,
    ),
  );
}
