// The linking page: a journal's one-time URL /link/TOKEN walks a person through
// phone -> code -> profile (create or check) -> confirm. Role and school are shown as the
// journal sent them and are never part of any form. Every text goes through textContent:
// names come from people and journals, not from us.

import { call, deviceName, saveToken, savedToken } from "./api.js";
import { chooseLang, currentLang, errorText, setLang, t } from "./i18n.js";

const token = decodeURIComponent(location.pathname.split("/").pop() || "");
const app = document.getElementById("app");
const state = { offer: null, phone: "", profile: null, step: null };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      el.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return el;
}

// One screen at a time; its heading takes the focus so a screen reader announces the step.
function show(step, ...content) {
  state.step = step;
  document.title = `${t("link.title")} — ${t("app.title")}`;
  const heading = h("h1", { tabindex: "-1", text: t(`${step}`) });
  app.replaceChildren(header(), h("section", { "data-step": step }, heading, ...content));
  heading.focus();
}

function header() {
  const other = currentLang() === "ru" ? "en" : "ru";
  return h(
    "header",
    {},
    h("span", { class: "brand", text: t("app.title") }),
    h("button", {
      type: "button",
      class: "link-button",
      lang: other,
      "aria-label": t("lang.switch.label"),
      text: t("lang.switch"),
      onclick: () => {
        setLang(other);
        rerender();
      },
    }),
  );
}

function alertBox() {
  return h("p", { class: "alert", role: "alert", "aria-live": "assertive" });
}

function showError(box, error) {
  box.textContent = errorText(error, { role: state.offer?.role });
}

function field(id, label, input) {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input);
}

// Disables the form while a request runs, so a double click never sends twice.
async function busy(form, work) {
  const controls = form.querySelectorAll("button, input, select");
  controls.forEach((c) => (c.disabled = true));
  try {
    await work();
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

function fullName(p) {
  return [p.last_name, p.first_name, p.patronymic].filter(Boolean).join(" ");
}

function offerSummary() {
  const o = state.offer;
  const expires = new Date(o.expires_at).toLocaleString(currentLang() === "ru" ? "ru-RU" : "en-GB");
  return h(
    "dl",
    { class: "offer" },
    h("dt", { text: t("link.role") }),
    h("dd", { "data-field": "role", text: t(`role.${o.role}`) }),
    h("dt", { text: t("link.school") }),
    h("dd", { "data-field": "school", text: o.school_name || o.school_id }),
    h("dt", { text: t("link.expires") }),
    h("dd", { text: expires }),
  );
}

async function start() {
  show("link.loading");
  const res = await call("GET", `/v1/link/${encodeURIComponent(token)}`);
  if (!res.ok) return fatal(res.body.error);
  state.offer = res.body;
  if (savedToken()) {
    const me = await call("GET", "/v1/profile");
    if (me.ok) {
      state.profile = me.body;
      return intro(true);
    }
    saveToken(null);
  }
  intro(false);
}

function intro(signedIn) {
  const actions = signedIn
    ? [
        h("p", { text: t("link.signed_in_as", { name: fullName(state.profile), phone: state.profile.phone }) }),
        h("button", { type: "button", onclick: () => profileStep(), text: t("link.continue") }),
        h("button", {
          type: "button",
          class: "secondary",
          onclick: signOutAndRestart,
          text: t("link.other_phone"),
        }),
      ]
    : [h("button", { type: "button", onclick: () => phoneStep(), text: t("link.continue") })];
  show(
    "link.title",
    h("p", { text: t("link.offer", { journal: state.offer.journal }) }),
    offerSummary(),
    ...actions,
  );
}

function phoneStep() {
  const input = h("input", {
    type: "tel",
    name: "phone",
    autocomplete: "tel",
    inputmode: "tel",
    required: true,
    value: state.phone,
  });
  const box = alertBox();
  const form = h(
    "form",
    { novalidate: true },
    field("phone", t("phone.label"), input),
    box,
    h("button", { type: "submit", text: t("phone.submit") }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      const res = await call("POST", "/v1/auth/code", { phone: input.value });
      if (!res.ok) return showError(box, res.body.error);
      state.phone = res.body.phone;
      codeStep(res.body.resend_after_s);
    });
  });
  show("phone.title", h("p", { class: "hint", text: t("phone.hint") }), form);
  input.focus();
}

function codeStep(resendAfter) {
  const input = h("input", {
    type: "text",
    name: "code",
    autocomplete: "one-time-code",
    inputmode: "numeric",
    pattern: "[0-9]{6}",
    maxlength: "6",
    required: true,
  });
  const box = alertBox();
  const resend = h("button", { type: "button", class: "secondary" });
  const form = h(
    "form",
    { novalidate: true },
    field("code", t("code.label"), input),
    box,
    h("button", { type: "submit", text: t("code.submit") }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form, async () => {
      const res = await call("POST", "/v1/auth/verify", {
        phone: state.phone,
        code: input.value.trim(),
        device_name: deviceName(),
      });
      if (!res.ok) return showError(box, res.body.error);
      saveToken(res.body.token);
      const me = await call("GET", "/v1/profile");
      if (!me.ok) return showError(box, me.body.error);
      state.profile = me.body;
      profileStep();
    });
  });
  countdown(resend, resendAfter, async () => {
    const res = await call("POST", "/v1/auth/code", { phone: state.phone });
    if (!res.ok) return showError(box, res.body.error);
    box.textContent = "";
    countdown(resend, res.body.resend_after_s, null);
  });
  const change = h("button", { type: "button", class: "link-button", onclick: () => phoneStep(), text: t("code.change_phone") });
  show("code.title", h("p", { text: t("code.sent", { phone: state.phone }) }), form, resend, change);
  input.focus();
}

// The resend button waits out the server's cooldown; the server enforces it anyway.
function countdown(button, seconds, onResend) {
  if (onResend) button.onclick = onResend;
  let left = Math.ceil(seconds || 0);
  const tick = () => {
    if (!button.isConnected) return;
    button.disabled = left > 0;
    button.textContent = left > 0 ? t("code.resend_in", { seconds: left }) : t("code.resend");
    if (left-- > 0) setTimeout(tick, 1000);
  };
  tick();
}

function profileStep() {
  return state.profile.needs_profile ? profileForm() : profileCheck();
}

function profileCheck() {
  const p = state.profile;
  const row = (key, value) => [h("dt", { text: t(key) }), h("dd", { text: value || t("profile.not_set") })];
  show(
    "profile.title.check",
    h("p", { class: "hint", text: t("profile.hint.check") }),
    h(
      "dl",
      { class: "profile" },
      row("profile.last_name", p.last_name),
      row("profile.first_name", p.first_name),
      row("profile.patronymic", p.patronymic),
      row("profile.birth_date", p.birth_date),
      row("profile.gender", p.gender ? t(`gender.${p.gender}`) : null),
      row("profile.phone", p.phone),
    ),
    h("button", { type: "button", onclick: () => confirmStep(), text: t("profile.correct") }),
    h("button", { type: "button", class: "secondary", onclick: () => profileForm(), text: t("profile.edit") }),
  );
}

function profileForm() {
  const p = state.profile;
  const text = (name, required) =>
    h("input", { type: "text", name, value: p[name] || "", required, maxlength: "100", autocomplete: AUTOCOMPLETE[name] });
  const inputs = {
    last_name: text("last_name", true),
    first_name: text("first_name", true),
    patronymic: text("patronymic", false),
    birth_date: h("input", { type: "date", name: "birth_date", value: p.birth_date || "", autocomplete: "bday" }),
  };
  const gender = h(
    "fieldset",
    {},
    h("legend", { text: t("profile.gender") }),
    ["male", "female", ""].map((value) => {
      const id = `gender-${value || "none"}`;
      return h(
        "span",
        { class: "choice" },
        h("input", { type: "radio", name: "gender", id, value, checked: (p.gender || "") === value }),
        h("label", { for: id, text: t(`gender.${value || "none"}`) }),
      );
    }),
  );
  const box = alertBox();
  const form = h(
    "form",
    { novalidate: true },
    field("last_name", t("profile.last_name"), inputs.last_name),
    field("first_name", t("profile.first_name"), inputs.first_name),
    field("patronymic", t("profile.patronymic"), inputs.patronymic),
    field("birth_date", t("profile.birth_date"), inputs.birth_date),
    gender,
    box,
    h("button", { type: "submit", text: t("profile.save") }),
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
        showError(box, res.body.error);
        inputs[res.body.error.field]?.focus();
        return;
      }
      state.profile = res.body;
      confirmStep();
    });
  });
  const fresh = p.needs_profile;
  show(
    fresh ? "profile.title.create" : "profile.title.check",
    h("p", { class: "hint", text: t(fresh ? "profile.hint.create" : "profile.hint.check") }),
    form,
  );
}

const AUTOCOMPLETE = { last_name: "family-name", first_name: "given-name", patronymic: "additional-name" };

function confirmStep() {
  const box = alertBox();
  const button = h("button", { type: "button", text: t("confirm.submit") });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const res = await call("POST", `/v1/link/${encodeURIComponent(token)}/confirm`);
    button.disabled = false;
    if (!res.ok) return showError(box, res.body.error);
    doneStep();
  });
  show(
    "confirm.title",
    h("p", { text: t("confirm.question", { journal: state.offer.journal, name: fullName(state.profile) }) }),
    offerSummary(),
    box,
    button,
    // After a refusal (R5: a parent signed in on a child's link) the way out is another number.
    h("button", { type: "button", class: "secondary", onclick: signOutAndRestart, text: t("link.other_phone") }),
  );
}

async function signOutAndRestart() {
  await call("POST", "/v1/auth/logout");
  saveToken(null);
  state.profile = null;
  phoneStep();
}

async function doneStep() {
  const list = h("ul", { class: "links" });
  const box = h("p", { role: "status", "aria-live": "polite" });
  show(
    "done.title",
    h("p", { text: t("done.text") }),
    h("h2", { text: t("done.links") }),
    list,
    box,
  );
  await fillLinks(list, box);
}

// Unlinking from the profile side ("Отвязать учетную запись"), next to what was linked.
async function fillLinks(list, box) {
  const res = await call("GET", "/v1/links");
  if (!res.ok) return showError(box, res.body.error);
  if (res.body.links.length === 0) {
    list.replaceChildren(h("li", { text: t("done.none") }));
    return;
  }
  list.replaceChildren(
    ...res.body.links.map((link) => {
      const school = link.school_name || link.school_id;
      const role = t(`role.${link.role}`);
      return h(
        "li",
        {},
        h("span", { text: `${link.journal}: ${role}, ${school}` }),
        h("button", {
          type: "button",
          class: "secondary",
          "aria-label": t("done.unlink.label", { role, school }),
          text: t("done.unlink"),
          onclick: async () => {
            const path = `/v1/links/${encodeURIComponent(link.journal_id)}/${encodeURIComponent(link.account_id)}`;
            const out = await call("DELETE", path);
            if (!out.ok) return showError(box, out.body.error);
            box.textContent = t("done.unlinked");
            await fillLinks(list, box);
          },
        }),
      );
    }),
  );
}

function fatal(error) {
  state.fatal = error;
  show("error.title", h("p", { role: "alert", text: errorText(error, { role: state.offer?.role }) }));
}

// A language switch redraws the current screen from state; what was typed is kept in state
// only for the phone (a half-typed code or profile is short to retype).
function rerender() {
  const screens = {
    "link.loading": start,
    "link.title": () => intro(Boolean(state.profile)),
    "phone.title": phoneStep,
    "code.title": () => codeStep(0),
    "profile.title.create": profileForm,
    "profile.title.check": profileStep,
    "confirm.title": confirmStep,
    "done.title": doneStep,
    "error.title": () => fatal(state.fatal),
  };
  (screens[state.step] || start)();
}

setLang(chooseLang());
start();
