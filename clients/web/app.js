// The messenger in the browser, served at / and /chats/ROOM: signing in with phone and code,
// the chat list and one chat, search, the account (profile, devices), and joining by an
// invite link (/#join=CODE). Everything live comes over one Session (session.js).

import { call, saveToken, savedToken } from "./api.js";
import { accountView, profileForm } from "./account.js";
import { ChatView } from "./chat.js";
import { Chats, People, chatList } from "./chats.js";
import { h, langButton } from "./dom.js";
import { chooseLang, setLang, t } from "./i18n.js";
import { joinView, validCode } from "./invite.js";
import "./app-strings.js";
import { newChatView } from "./newchat.js";
import { searchView } from "./search.js";
import { Session } from "./session.js";
import { signInSteps } from "./signin.js";

const app = document.getElementById("app");
const state = {
  me: null,
  session: null,
  chats: null,
  people: null,
  view: null, // the ChatView on screen
  phone: "",
  notice: "", // shown on the sign-in screen (why one was signed out)
  step: null, // the sign-in step, for a language switch
};

// -- addresses ------------------------------------------------------------------------------

function route() {
  const path = location.pathname;
  const hash = location.hash.slice(1);
  if (hash.startsWith("join=")) return { name: "join", code: decodeURIComponent(hash.slice(5)) };
  const chat = path.match(/^\/chats\/([^/]+)$/);
  if (chat) return { name: "chat", roomId: decodeURIComponent(chat[1]) };
  if (hash === "account") return { name: "account" };
  if (hash === "search") return { name: "search" };
  if (hash === "new") return { name: "new" };
  return { name: "home" };
}

function navigate(href) {
  if (href !== location.pathname + location.hash) history.pushState(null, "", href);
  render();
}

window.addEventListener("popstate", () => render());

// -- the frame around everything --------------------------------------------------------

function navLink(href, key, current) {
  return h("a", {
    href,
    class: "nav-link",
    "aria-current": current ? "page" : null,
    text: t(key),
    onclick: (event) => {
      if (href.startsWith("/lessons")) return; // another page
      event.preventDefault();
      navigate(href);
    },
  });
}

let connection = null;

function topBar(where) {
  connection = h("span", { class: "connection", role: "status" });
  showConnection(state.session?.state);
  return h(
    "header",
    { class: "top" },
    h("span", { class: "brand", text: t("app.title") }),
    h(
      "nav",
      { "aria-label": t("nav.label") },
      navLink("/", "nav.chats", where === "home" || where === "chat"),
      navLink("/lessons", "nav.lessons", false),
      navLink("/#search", "nav.search", where === "search"),
      navLink("/#account", "nav.account", where === "account"),
    ),
    connection,
    langButton(() => {
      state.view?.destroy();
      state.view = null;
      render();
    }, "link-button"),
    h("button", { type: "button", class: "secondary", text: t("nav.sign_out"), onclick: signOut }),
  );
}

function showConnection(s) {
  if (!connection) return;
  connection.textContent = s === "connecting" ? t("conn.connecting") : "";
  connection.dataset.state = s || "";
}

// -- signing in -----------------------------------------------------------------------------

function signInScreen(step, ...content) {
  state.step = step;
  document.title = t("app.title");
  const heading = h("h1", { tabindex: "-1", text: t(step) });
  const pending = route();
  app.classList.remove("wide");
  app.replaceChildren(
    h("header", {}, h("span", { class: "brand", text: t("app.title") }), langButton(rerenderSignIn, "link-button")),
    h(
      "section",
      { class: "signin", "data-step": step },
      heading,
      state.notice ? h("p", { class: "alert", role: "alert", text: state.notice }) : null,
      pending.name === "join" ? h("p", { class: "hint", text: t("join.sign_in_first") }) : null,
      ...content,
    ),
  );
  heading.focus();
}

function rerenderSignIn() {
  if (state.step === "code.title") codeStep(0);
  else if (state.step === "profile.title.create") newProfileStep();
  else phoneStep();
}

const { phoneStep, codeStep } = signInSteps({
  state,
  show: signInScreen,
  phoneTitle: "signin.title",
  onSignedIn: async () => {
    state.notice = "";
    await start();
  },
});

function newProfileStep() {
  const { form, focus } = profileForm(state.me, (saved) => {
    state.me = { ...state.me, ...saved };
    start();
  });
  signInScreen("profile.title.create", h("p", { class: "hint", text: t("signin.profile_hint") }), form);
  focus.focus();
}

async function signOut() {
  state.session?.close(); // first, so the server's close (4003) is not read as "revoked elsewhere"
  await call("POST", "/v1/auth/logout");
  endSession("");
}

// The device is signed out (here, or revoked elsewhere): back to the sign-in screen.
function endSession(notice) {
  saveToken(null);
  state.session?.close();
  state.session = null;
  state.view?.destroy();
  state.view = null;
  state.me = null;
  state.notice = notice;
  phoneStep();
}

// -- the signed-in app --------------------------------------------------------------------

async function start() {
  if (!savedToken()) return phoneStep();
  const me = await call("GET", "/v1/profile");
  if (!me.ok) {
    if (me.status === 401) return endSession(state.notice);
    app.replaceChildren(h("p", { role: "alert", text: t("error.network") }));
    return undefined;
  }
  state.me = me.body;
  if (state.me.needs_profile) return newProfileStep();
  const session = new Session({ token: savedToken() });
  state.session = session;
  state.people = new People(session, state.me);
  state.chats = new Chats(session, state.me, state.people);
  session.onState((s, info) => {
    showConnection(s);
    if (s === "closed" && info.revoked) endSession(t("signin.revoked"));
  });
  session.on("ev", (ev) => {
    state.chats.apply(ev);
    if (state.view && ev.room_id === state.view.roomId) state.view.apply(ev);
  });
  session.on("typing", (push) => {
    if (state.view && push.room_id === state.view.roomId) state.view.typing(push);
  });
  session.on("poll", (push) => {
    if (state.view && push.room_id === state.view.roomId) state.view.pollPush(push);
  });
  session.on("gap", (gap) => {
    // Only after a resume: events the catch-up left out. The open chat reads anew.
    if (gap.after > 0 && state.view && gap.room_id === state.view.roomId) state.view.reload();
  });
  session.on("synced", () => {
    if (session.connects > 1) state.chats.refresh();
  });
  session.on("reset", () => {
    state.chats.refresh();
    state.view?.reload();
  });
  state.chats.onChange(() => {
    renderList();
    state.view?.renderHeader();
  });
  render(); // the frame at once, "connecting" in it
  try {
    await session.connect();
  } catch {
    return undefined; // revoked: onState took us to the sign-in screen
  }
  await state.chats.load();
  render();
  return undefined;
}

let listPane = null;
let viewPane = null;

function renderList() {
  if (!listPane || !state.chats) return;
  const where = route();
  listPane.replaceChildren(
    h(
      "div",
      { class: "list-head" },
      h("h2", { id: "list-title", text: t("list.title") }),
      h("a", {
        href: "/#new",
        class: "button secondary small",
        "aria-current": where.name === "new" ? "page" : null,
        text: t("newchat.open"),
        onclick: (event) => {
          event.preventDefault();
          navigate("/#new");
        },
      }),
    ),
    chatList(state.chats, state.people, where.roomId, navigate),
  );
}

function render() {
  if (!state.me || !state.session) return;
  const where = route();
  document.title = t("app.title");
  app.classList.add("wide");
  listPane = h("aside", { class: "list-pane", "aria-labelledby": "list-title" });
  viewPane = h("div", { class: "view-pane" });
  const shell = h(
    "div",
    { class: where.name === "home" ? "shell" : "shell has-view" },
    topBar(where.name),
    h("div", { class: "panes" }, listPane, viewPane),
  );
  app.replaceChildren(shell);
  renderList();
  const keepView = where.name === "chat" && state.view?.roomId === where.roomId;
  if (!keepView) {
    state.view?.destroy();
    state.view = null;
    if (state.chats) state.chats.openRoom = null;
  }
  if (where.name === "chat") {
    if (!keepView) {
      state.view = new ChatView(
        { session: state.session, me: state.me, chats: state.chats, people: state.people, navigate },
        where.roomId,
      );
      state.chats.openRoom = where.roomId;
    }
    viewPane.append(state.view.element);
    if (state.chats.loaded && !state.view.opened) {
      state.view.opened = true;
      state.view.open().then(() => state.view?.element.querySelector("h1")?.focus());
    }
  } else if (where.name === "account") {
    accountView(viewPane, {
      me: state.me,
      setMe: (me) => (state.me = { ...state.me, ...me }),
      signOut,
    });
  } else if (where.name === "new") {
    newChatView(viewPane, {
      session: state.session,
      me: state.me,
      chats: state.chats,
      people: state.people,
      navigate,
    });
  } else if (where.name === "search") {
    searchView(viewPane, { session: state.session, chats: state.chats, people: state.people, navigate });
  } else if (where.name === "join") {
    if (!validCode(where.code)) viewPane.append(h("p", { role: "alert", text: t("join.not_found") }));
    else {
      joinView(viewPane, where.code, async (roomId) => {
        await state.chats.refresh();
        navigate(`/chats/${encodeURIComponent(roomId)}`);
      });
    }
  } else {
    viewPane.append(h("p", { class: "hint placeholder", text: t("list.choose") }));
  }
}

setLang(chooseLang());
start();
