// Signing in with a phone number and the code from the SMS, as every page does it: the
// linking page (link.js) and the messenger (app.js) put these forms on their own screens.

import { call, deviceName, saveToken } from "./api.js";
import { alertBox, busy, field, h } from "./dom.js";
import { errorText, t } from "./i18n.js";

// The phone form. onSent({phone, resend_after_s}) once a code is on its way; `phone` is
// the number as the server normalised it.
export function phoneForm({ phone = "", onSent }) {
  const input = h("input", {
    type: "tel",
    name: "phone",
    autocomplete: "tel",
    inputmode: "tel",
    required: true,
    value: phone,
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
      if (!res.ok) return (box.textContent = errorText(res.body.error));
      onSent(res.body);
    });
  });
  return { nodes: [h("p", { class: "hint", text: t("phone.hint") }), form], focus: input };
}

// The code form. onSignedIn(verify result) once the token is saved; onChangePhone() goes
// back to the phone form.
export function codeForm({ phone, resendAfter, onSignedIn, onChangePhone }) {
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
        phone,
        code: input.value.trim(),
        device_name: deviceName(),
      });
      if (!res.ok) return (box.textContent = errorText(res.body.error));
      saveToken(res.body.token);
      await onSignedIn(res.body, box);
    });
  });
  countdown(resend, resendAfter, async () => {
    const res = await call("POST", "/v1/auth/code", { phone });
    if (!res.ok) return (box.textContent = errorText(res.body.error));
    box.textContent = "";
    countdown(resend, res.body.resend_after_s, null);
  });
  const change = h("button", {
    type: "button",
    class: "link-button",
    onclick: onChangePhone,
    text: t("code.change_phone"),
  });
  return {
    nodes: [h("p", { text: t("code.sent", { phone }) }), form, resend, change],
    focus: input,
  };
}

// The resend button waits out the server's cooldown; the server enforces it anyway.
function countdown(button, seconds, onResend) {
  if (onResend) button.onclick = onResend;
  let left = Math.ceil(seconds || 0);
  const tick = () => {
    if (!button.isConnected && left < Math.ceil(seconds || 0)) return;
    button.disabled = left > 0;
    button.textContent = left > 0 ? t("code.resend_in", { seconds: left }) : t("code.resend");
    if (left-- > 0) setTimeout(tick, 1000);
  };
  tick();
}

// The phone and code steps as one flow: show(titleKey, ...nodes) draws a step, state.phone
// keeps the number across steps (and language switches), onSignedIn(result, box) follows a
// good code. Returns the two steps for pages that redraw them.
export function signInSteps({ state, show, phoneTitle, onSignedIn }) {
  function phoneStep() {
    const { nodes, focus } = phoneForm({
      phone: state.phone,
      onSent: (sent) => {
        state.phone = sent.phone;
        codeStep(sent.resend_after_s);
      },
    });
    show(phoneTitle, ...nodes);
    focus.focus();
  }

  function codeStep(resendAfter) {
    const { nodes, focus } = codeForm({
      phone: state.phone,
      resendAfter,
      onChangePhone: () => phoneStep(),
      onSignedIn,
    });
    show("code.title", ...nodes);
    focus.focus();
  }

  return { phoneStep, codeStep };
}
