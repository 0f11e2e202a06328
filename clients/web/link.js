// The linking page: a journal's one-time URL /link/TOKEN walks a person through
// phone -> code -> profile (create or check) -> confirm. Role and school are shown as the
// journal sent them and are never part of any form. Every text goes through textContent:
// names come from people and journals, not from us.

import { profileForm as accountProfileForm, profileList } from "./account.js";
import { call, saveToken, savedToken } from "./api.js";
import { alertBox, fullName, h, langButton } from "./dom.js";
import { chooseLang, currentLang, errorText, setLang, t } from "./i18n.js";
import { signInSteps } from "./signin.js";

const token = decodeURIComponent(location.pathname.split("/").pop() || "");
const app = document.getElementById("app");
const state = { offer: null, phone: "", profile: null, step: null };

// One screen at a time; its heading takes the focus so a screen reader announces the step.
function show(step, ...content) {
  state.step = step;
  document.title = `${t("link.title")} — ${t("app.title")}`;
  const heading = h("h1", { tabindex: "-1", text: t(`${step}`) });
  app.replaceChildren(header(), h("section", { "data-step": step }, heading, ...content));
  heading.focus();
}

function header() {
  return h(
    "header",
    {},
    h("span", { class: "brand", text: t("app.title") }),
    langButton(rerender, "link-button"),
  );
}

function showError(box, error) {
  box.textContent = errorText(error, { role: state.offer?.role });
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

const { phoneStep, codeStep } = signInSteps({
  state,
  show,
  phoneTitle: "phone.title",
  onSignedIn: async (_, box) => {
    const me = await call("GET", "/v1/profile");
    if (!me.ok) return showError(box, me.body.error);
    state.profile = me.body;
    profileStep();
  },
});

function profileStep() {
  return state.profile.needs_profile ? profileForm() : profileCheck();
}

function profileCheck() {
  show(
    "profile.title.check",
    h("p", { class: "hint", text: t("profile.hint.check") }),
    profileList(state.profile, { class: "profile" }),
    h("button", { type: "button", onclick: () => confirmStep(), text: t("profile.correct") }),
    h("button", { type: "button", class: "secondary", onclick: () => profileForm(), text: t("profile.edit") }),
  );
}

function profileForm() {
  const { form, focus } = accountProfileForm(state.profile, (saved) => {
    state.profile = saved;
    confirmStep();
  });
  const fresh = state.profile.needs_profile;
  show(
    fresh ? "profile.title.create" : "profile.title.check",
    h("p", { class: "hint", text: t(fresh ? "profile.hint.create" : "profile.hint.check") }),
    form,
  );
  focus.focus();
}

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
