// The list of a user's videoconferences (R25), as the diary shows it: name, type, date,
// start and end, and a "Перейти" link that works from the start time. Read with the `calls`
// op; read again whenever a chat's `call` state event says a call changed, and every minute.

import { savedToken } from "./api.js";
import "./call_strings.js";
import { h, langButton } from "./dom.js";
import { chooseLang, errorText, setLang, t } from "./i18n.js";
import { Session } from "./session.js";

const PAST_MS = 7 * 24 * 3600 * 1000; // the list starts a week back
const REFRESH_MS = 60 * 1000;
const PAGE = 50;

const app = document.getElementById("app");

// "2030-03-04" -> "04.03.2030"; "2030-03-04T10:00:00+03:00" -> "04.03.2030 10:00". The
// server gives times in the school's zone, so they are shown as they are.
export function dayText(date) {
  const [y, m, d] = date.split("-");
  return `${d}.${m}.${y}`;
}

export function timeText(stamp) {
  if (!stamp) return "—";
  return `${dayText(stamp.slice(0, 10))} ${stamp.slice(11, 16)}`;
}

function signInNeeded() {
  app.replaceChildren(
    h("h1", { text: t("lessons.title") }),
    h("p", { text: t("signin.needed") }),
    h("a", { href: "/", class: "button-link", text: t("signin.go") }),
  );
}

function linkCell(call) {
  if (call.joinable) {
    return h("a", {
      href: call.url,
      class: "button-link",
      text: t("lessons.go"),
      "aria-label": t("lessons.go.label", { name: call.name }),
    });
  }
  let why = t("lessons.not_yet", { time: timeText(call.start) });
  if (call.blocked) why = t("lessons.blocked");
  else if (call.state === "ended") why = t("lessons.over");
  return h(
    "span",
    { class: "go-off" },
    h("button", { type: "button", disabled: true, text: t("lessons.go") }),
    h("span", { class: "hint", text: why }),
  );
}

function table(calls) {
  const head = ["name", "type", "date", "start", "end", "link"].map((k) =>
    h("th", { scope: "col", text: t(`lessons.${k}`) }),
  );
  const rows = calls.map((c) =>
    h(
      "tr",
      { "data-call": c.call_id },
      h("td", { text: c.name }),
      h("td", { text: t(`lessons.type.${c.kind}`) }),
      h("td", { text: dayText(c.date) }),
      h("td", { text: timeText(c.start) }),
      h("td", { text: timeText(c.end) }),
      h("td", {}, linkCell(c)),
    ),
  );
  return h(
    "table",
    { class: "lessons" },
    h("caption", { class: "visually-hidden", text: t("lessons.title") }),
    h("thead", {}, h("tr", {}, head)),
    h("tbody", {}, rows),
  );
}

async function main() {
  setLang(chooseLang());
  const token = savedToken();
  if (!token) {
    signInNeeded();
    return;
  }
  app.replaceChildren(h("p", { text: t("lessons.loading") }));
  const session = new Session({ token });
  let calls = [];
  let more = false;
  let failure = null;

  const render = () => {
    document.title = `${t("lessons.title")} — ${t("app.title")}`;
    const body = [];
    if (failure) body.push(h("p", { class: "alert", role: "alert", text: failure }));
    if (calls.length === 0 && !failure) body.push(h("p", { text: t("lessons.none") }));
    if (calls.length) body.push(table(calls));
    if (more) {
      body.push(h("button", { type: "button", class: "secondary", text: t("lessons.more"), onclick: loadMore }));
    }
    app.replaceChildren(
      h(
        "header",
        {},
        h("a", { href: "/", class: "brand", text: t("app.title") }),
        langButton(render),
      ),
      h("h1", { text: t("lessons.title") }),
      ...body,
    );
  };

  const load = async (from) => {
    try {
      const out = await session.request("calls", { from_ms: Math.max(0, from), limit: PAGE });
      failure = null;
      return out;
    } catch (err) {
      failure = errorText(err);
      return null;
    }
  };

  const reload = async () => {
    const out = await load(Date.now() - PAST_MS);
    if (out) {
      calls = out.calls;
      more = out.more;
    }
    render();
  };

  async function loadMore() {
    const last = calls[calls.length - 1];
    const out = await load(last ? last.start_ms : 0);
    if (out) {
      const seen = new Set(calls.map((c) => c.call_id));
      calls = [...calls, ...out.calls.filter((c) => !seen.has(c.call_id))];
      more = out.more;
    }
    render();
  }

  session.onState((state, info) => {
    if (state === "closed" && info.revoked) signInNeeded();
    else if (state === "open" && info.resumed) reload();
  });
  // A call opened, started or ended in one of my chats: its "go" link may have changed.
  session.on("ev", (event) => {
    if (event.type === "call") reload();
  });
  try {
    await session.connect();
  } catch {
    signInNeeded();
    return;
  }
  await reload();
  setInterval(reload, REFRESH_MS);
}

main();
