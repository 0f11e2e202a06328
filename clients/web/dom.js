// Small DOM helpers the pages share. Text only ever goes in through textContent or text
// nodes: names and messages come from people, never from us.

import { currentLang, setLang, t } from "./i18n.js";

// h("button", {type: "button", text: "…", onclick: fn}, ...children)
export function h(tag, attrs = {}, ...children) {
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

export function alertBox() {
  return h("p", { class: "alert", role: "alert", "aria-live": "assertive" });
}

export function field(id, label, input) {
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input);
}

// Disables the form while a request runs, so a double click never sends twice.
export async function busy(form, work) {
  const controls = form.querySelectorAll("button, input, select, textarea");
  controls.forEach((c) => (c.disabled = true));
  try {
    await work();
  } finally {
    controls.forEach((c) => (c.disabled = false));
  }
}

export function fullName(p) {
  return [p.last_name, p.first_name, p.patronymic].filter(Boolean).join(" ");
}

// The button that switches between Russian and English; after() redraws the page.
export function langButton(after, cls = "secondary") {
  const other = currentLang() === "ru" ? "en" : "ru";
  return h("button", {
    type: "button",
    class: cls,
    lang: other,
    text: t("lang.switch"),
    "aria-label": t("lang.switch.label"),
    onclick: () => {
      setLang(other);
      after();
    },
  });
}
