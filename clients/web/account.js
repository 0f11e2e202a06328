// The person's own profile (view and edit, GET/PUT /v1/profile) and their devices (list,
// revoke: DELETE /v1/devices/{id}); signing out is revoking this device.

import { call } from "./api.js";
import { alertBox, busy, field, fullName, h } from "./dom.js";
import { currentLang, errorText, t } from "./i18n.js";

const NAMES = ["last_name", "first_name", "patronymic"];
const AUTOCOMPLETE = { last_name: "family-name", first_name: "given-name", patronymic: "additional-name" };

function dateText(ms) {
  if (!ms) return t("devices.never");
  return new Date(ms).toLocaleString(currentLang() === "ru" ? "ru-RU" : "en-GB");
}

// Profile form; onSaved(profile). Used for a new profile after the first sign-in too.
export function profileForm(profile, onSaved, onCancel = null) {
  const inputs = {};
  for (const name of NAMES) {
    inputs[name] = h("input", {
      type: "text",
      name,
      value: profile[name] || "",
      maxlength: "100",
      required: name !== "patronymic",
      autocomplete: AUTOCOMPLETE[name],
    });
  }
  inputs.birth_date = h("input", { type: "date", name: "birth_date", value: profile.birth_date || "", autocomplete: "bday" });
  const gender = h(
    "fieldset",
    {},
    h("legend", { text: t("profile.gender") }),
    ["male", "female", ""].map((value) => {
      const id = `gender-${value || "none"}`;
      return h(
        "span",
        { class: "choice" },
        h("input", { type: "radio", name: "gender", id, value, checked: (profile.gender || "") === value }),
        h("label", { for: id, text: t(`gender.${value || "none"}`) }),
      );
    }),
  );
  const box = alertBox();
  const form = h(
    "form",
    { novalidate: true, class: "profile-form" },
    field("last_name", t("profile.last_name"), inputs.last_name),
    field("first_name", t("profile.first_name"), inputs.first_name),
    field("patronymic", t("profile.patronymic"), inputs.patronymic),
    field("birth_date", t("profile.birth_date"), inputs.birth_date),
    gender,
    box,
    h("button", { type: "submit", text: t("profile.save") }),
    onCancel ? h("button", { type: "button", class: "secondary", text: t("common.cancel"), onclick: onCancel }) : null,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {};
    for (const [name, input] of Object.entries(inputs)) {
      const value = input.value.trim();
      if (value || name === "first_name" || name === "last_name") body[name] = value;
    }
    const chosen = form.querySelector("input[name=gender]:checked");
    if (chosen && chosen.value) body.gender = chosen.value;
    busy(form, async () => {
      const res = await call("PUT", "/v1/profile", body);
      if (!res.ok) {
        box.textContent = errorText(res.body.error);
        inputs[res.body.error.field]?.focus();
        return;
      }
      onSaved(res.body);
    });
  });
  return { form, focus: inputs.last_name };
}

// The account screen: profile and devices. ctx: {me, setMe, signOut}.
export async function accountView(container, ctx) {
  const heading = h("h1", { tabindex: "-1", text: t("account.title") });
  const profile = h("section", { class: "profile", "aria-labelledby": "profile-title" });
  const devices = h("section", { class: "devices", "aria-labelledby": "devices-title" });
  container.replaceChildren(
    h("div", { class: "account" }, heading, profile, devices),
  );
  heading.focus();
  showProfile(profile, ctx);
  await showDevices(devices, ctx);
}

// The profile as a definition list (what is not set says so).
export function profileList(p, attrs = {}) {
  const row = (key, value) => [h("dt", { text: t(key) }), h("dd", { text: value || t("profile.not_set") })];
  return h(
    "dl",
    attrs,
    row("profile.last_name", p.last_name),
    row("profile.first_name", p.first_name),
    row("profile.patronymic", p.patronymic),
    row("profile.birth_date", p.birth_date),
    row("profile.gender", p.gender ? t(`gender.${p.gender}`) : null),
    row("profile.phone", p.phone),
  );
}

function showProfile(section, ctx) {
  const p = ctx.me;
  section.replaceChildren(
    h("h2", { id: "profile-title", text: t("account.profile") }),
    profileList(p),
    h("button", {
      type: "button",
      class: "secondary",
      text: t("profile.edit"),
      "aria-label": t("account.edit_label"),
      onclick: () => {
        const { form, focus } = profileForm(
          p,
          (saved) => {
            ctx.me = { ...ctx.me, ...saved };
            ctx.setMe(saved);
            showProfile(section, ctx);
          },
          () => showProfile(section, ctx),
        );
        section.replaceChildren(h("h2", { id: "profile-title", text: t("account.profile") }), form);
        focus.focus();
      },
    }),
  );
  section.setAttribute("data-name", fullName(p));
}

async function showDevices(section, ctx) {
  const box = alertBox();
  const status = h("p", { role: "status" });
  section.replaceChildren(h("h2", { id: "devices-title", text: t("devices.title") }), status, box);
  const res = await call("GET", "/v1/devices");
  if (!res.ok) {
    box.textContent = errorText(res.body.error);
    return;
  }
  const list = h(
    "ul",
    { class: "device-list" },
    res.body.devices.map((device) =>
      h(
        "li",
        { "data-device-id": device.device_id },
        h("span", { class: "device-name", text: device.name || device.device_id }),
        device.current ? h("span", { class: "badge", text: t("devices.current") }) : null,
        h("span", { class: "hint", text: t("devices.seen", {
            created: dateText(device.created_ts),
            when: dateText(device.last_seen_ts),
          }) }),
        device.current
          ? h("button", { type: "button", class: "secondary", text: t("nav.sign_out"), onclick: ctx.signOut })
          : h("button", {
              type: "button",
              class: "secondary",
              "aria-label": t("devices.revoke_label", { name: device.name || device.device_id }),
              text: t("devices.revoke"),
              onclick: async () => {
                const out = await call("DELETE", `/v1/devices/${encodeURIComponent(device.device_id)}`);
                if (!out.ok) {
                  box.textContent = errorText(out.body.error);
                  return;
                }
                await showDevices(section, ctx);
                section.querySelector("[role=status]").textContent = t("devices.revoked", {
                  name: device.name || device.device_id,
                });
              },
            }),
      ),
    ),
  );
  section.append(list);
}
