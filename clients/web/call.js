// The call page (/calls/{call_id}, R19): join with audio or video, see and hear the people
// of your room, and the controls of the manual's "Интерфейс звонка" in its order: Чат,
// Демонстрировать экран, Интерактивная доска, Поднять руку, Камера, Микрофон, Выход из
// звонка, Участники, Отображение участников, Настройки, Свернуть / Развернуть звонок. Admins
// also get "Доступы участников", "Сессионные залы", the recording and "Завершить для всех".
//
// The call's state comes with every `call` push (`state`, newest `version` wins) and is the
// only truth the page draws from; media is rtc.js's MediaSession. `window.sferumCall` is the
// page's context, for a person debugging a call (and for the tests, which read decoded frames
// through `sferumCall.media`).

import { savedToken } from "./api.js";
import { breakoutPanel, permissionsPanel } from "./call_admin.js";
import { CallBoard } from "./call_board.js";
import { CallChat } from "./call_chat.js";
import { peoplePanel } from "./call_people.js";
import "./call_strings.js";
import { h, langButton } from "./dom.js";
import { chooseLang, errorText, setLang, t } from "./i18n.js";
import { MediaSession, listDevices, slotKey } from "./rtc.js";
import { Session } from "./session.js";

const app = document.getElementById("app");
const callId = decodeURIComponent(location.pathname.split("/")[2] || "");
const NOT_OPEN_POLL_MS = 10000;
const TOAST_MS = 8000;
const PROFILE_BATCH = 100;

const ctx = {
  callId,
  session: null,
  me: null,
  state: null,
  media: null,
  phase: "loading", // loading, prejoin, notopen, waiting, in, over, error
  over: null, // why the page is over: ended, left, removed, refused
  message: "",
  names: new Map(),
  remote: new Map(), // slotKey(user, kind) -> MediaStream
  speaker: null,
  ui: { panel: null, layout: "grid", minimised: false, confirmEnd: false, withVideo: true },
  chat: null,
  board: null,
  toasts: null,

  // An op of this call (call_id added); a refusal is shown and answers null.
  async request(op, fields = {}, withCall = true) {
    try {
      return await this.session.request(op, withCall ? { call_id: callId, ...fields } : fields);
    } catch (err) {
      toast(errorText(err));
      return null;
    }
  },
  participant(userId) {
    return this.state?.participants.find((p) => p.user_id === userId) || null;
  },
  name(userId) {
    return this.names.get(userId) || userId;
  },
  myRoom() {
    return this.participant(this.me)?.room || "main";
  },
  isAdmin() {
    return Boolean(this.state?.admins.includes(this.me));
  },
  myCaps() {
    return this.participant(this.me)?.caps || [];
  },
  roomNumber(room) {
    return this.state?.breakout?.rooms.find((r) => r.room_id === room)?.number ?? "";
  },
  roomLabel(room) {
    if (room === "main") return t("call.room.main");
    const found = this.state?.breakout?.rooms.find((r) => r.room_id === room);
    return found?.name || t("call.room.breakout", { number: found?.number ?? "" });
  },
};
window.sferumCall = ctx;

// -- small pieces ------------------------------------------------------------------------------

function toast(text, actions = []) {
  if (!ctx.toasts) return;
  const item = h(
    "div",
    { class: "toast" },
    h("span", { text }),
    ...actions,
    h("button", {
      type: "button",
      class: "link-button",
      text: "×",
      "aria-label": t("toast.dismiss"),
      onclick: () => item.remove(),
    }),
  );
  ctx.toasts.append(item);
  setTimeout(() => item.remove(), TOAST_MS);
}

function button(key, onclick, { pressed, cls, label, text } = {}) {
  return h("button", {
    type: "button",
    class: ["ctl", cls].filter(Boolean).join(" "),
    "data-ctl": key,
    "aria-label": label || t(`ctl.${key}`),
    "aria-pressed": pressed === undefined ? null : String(pressed),
    text: text || t(`ctl.${key}`),
    onclick,
  });
}

async function learnNames(userIds) {
  const unknown = [...new Set(userIds)].filter((u) => u && !ctx.names.has(u));
  for (let i = 0; i < unknown.length; i += PROFILE_BATCH) {
    const batch = unknown.slice(i, i + PROFILE_BATCH);
    try {
      const out = await ctx.session.request("profiles", { user_ids: batch });
      for (const [user, p] of Object.entries(out.profiles)) {
        ctx.names.set(user, [p.last_name, p.first_name].filter(Boolean).join(" ") || user);
      }
    } catch {
      return;
    }
  }
  if (unknown.length) render();
}

// -- the state ---------------------------------------------------------------------------------

function applyState(state) {
  if (!state || (ctx.state && state.version <= ctx.state.version)) return;
  const before = ctx.state;
  const roomBefore = before ? ctx.myRoom() : null;
  ctx.state = state;
  learnNames([
    ...state.participants.map((p) => p.user_id),
    ...state.waiting.map((w) => w.user_id),
    ...state.admins,
  ]);
  if (state.state === "ended" || state.state === "cancelled") {
    finish("ended");
    return;
  }
  const mine = ctx.participant(ctx.me);
  if (ctx.phase === "waiting" && mine) {
    ctx.phase = "joining"; // one join at a time, whatever pushes come meanwhile
    enter();
    return;
  }
  if (ctx.phase === "in" && mine) {
    followServer(mine);
    if (roomBefore !== null && roomBefore !== mine.room) {
      toast(t("toast.moved", { room: ctx.roomLabel(mine.room) }));
      ctx.chat.sync();
      ctx.board.sync();
    }
  }
  render();
}

// What the server turned off (a force mute, a revoked permission) is off here too.
function followServer(mine) {
  const media = ctx.media;
  if (!media) return;
  if (!mine.audio && media.local.audio && !mine.caps.includes("microphone")) {
    media.setDevice("audio", false).catch(() => {}).finally(render);
  }
  if (!mine.video && media.local.video && !mine.caps.includes("camera")) {
    media.setDevice("video", false).catch(() => {}).finally(render);
  }
  if (media.local.screen && !mine.caps.includes("screen")) {
    media.stopScreen().finally(render);
  }
}

function onCallPush(push) {
  if (push.call_id !== callId) return;
  switch (push.type) {
    case "state":
      applyState(push.state);
      break;
    case "mute_request":
      toast(t("toast.mute_request"), [
        h("button", {
          type: "button",
          text: t("toast.mute_now"),
          onclick: (event) => {
            event.currentTarget.parentElement.remove();
            toggleDevice("audio");
          },
        }),
      ]);
      break;
    case "removed":
      finish("removed");
      break;
    case "refused":
      finish("refused");
      break;
    case "breakout_warning":
      toast(t("toast.breakout_warning", { time: new Date(push.ends_at_ms).toLocaleTimeString() }));
      break;
    case "broadcast":
      toast(t("toast.broadcast", { name: ctx.name(push.by), text: push.text }));
      break;
    case "whiteboard":
      ctx.board.onPush(push);
      break;
    default:
      break;
  }
}

// -- joining and leaving -----------------------------------------------------------------------

function newMedia() {
  const media = new MediaSession(ctx.session, callId);
  media.addEventListener("track", (event) => {
    const { userId, kind, stream } = event.detail;
    ctx.remote.set(slotKey(userId, kind), stream);
    renderStage();
  });
  media.addEventListener("trackended", (event) => {
    const { userId, kind } = event.detail;
    ctx.remote.delete(slotKey(userId, kind));
    renderStage();
  });
  media.addEventListener("speaker", (event) => {
    ctx.speaker = event.detail.userId;
    renderStage();
  });
  return media;
}

async function join(withVideo) {
  ctx.ui.withVideo = withVideo;
  ctx.phase = "joining";
  render();
  ctx.media?.close();
  ctx.media = newMedia();
  const failure = await ctx.media.openDevices({ audio: true, video: withVideo });
  if (failure) ctx.message = t("call.join.devices_failed", { error: failure.name || String(failure) });
  await enter();
}

// call_join with our offer; again after the waiting room let us in.
async function enter() {
  let result;
  try {
    result = await ctx.media.join();
  } catch (err) {
    joinRefused(err);
    return;
  }
  ctx.phase = result.joined ? "in" : "waiting";
  applyState(result.call);
  if (!result.joined) {
    render();
    return;
  }
  const media = ctx.media;
  for (const kind of ["audio", "video"]) {
    if (!media.local[kind]) continue;
    const ok = await ctx.request("call_media", { kind, on: true });
    if (!ok) await media.setDevice(kind, false).catch(() => {});
  }
  ctx.chat.sync();
  ctx.board.sync(true);
  render();
  if (ctx.message) {
    toast(ctx.message);
    ctx.message = "";
  }
}

function joinRefused(err) {
  ctx.media?.close();
  ctx.media = null;
  if (err.code === "not_open_yet") {
    ctx.phase = "notopen";
    ctx.message = t("call.not_open", { time: new Date(err.opens_at_ms).toLocaleString() });
    setTimeout(loadState, NOT_OPEN_POLL_MS);
  } else if (err.code === "call_ended" || err.code === "call_cancelled") {
    finish("ended");
    return;
  } else {
    ctx.phase = "error";
    // A refusal of the server has a code; anything else is the browser's media failing.
    ctx.message =
      typeof err?.code === "string"
        ? errorText(err)
        : t("call.media_failed", { error: err?.name || String(err) });
  }
  render();
}

function finish(why) {
  ctx.phase = "over";
  ctx.over = why;
  ctx.media?.close();
  ctx.media = null;
  ctx.remote.clear();
  render();
}

async function leave() {
  await ctx.request("call_leave", {});
  finish("left");
}

async function loadState() {
  try {
    const out = await ctx.session.request("call_get", { call_id: callId });
    ctx.state = null;
    applyState(out.call);
    if (ctx.phase === "over") return;
    const st = out.call.state;
    if (st === "scheduled") {
      ctx.phase = "notopen";
      ctx.message = t("call.not_open", { time: new Date(out.call.opens_at_ms).toLocaleString() });
      setTimeout(loadState, NOT_OPEN_POLL_MS);
    } else if (ctx.phase === "loading" || ctx.phase === "notopen") {
      ctx.phase = "prejoin";
      ctx.message = "";
    }
  } catch (err) {
    joinRefused(err);
    return;
  }
  render();
}

// -- devices -------------------------------------------------------------------------------------

async function toggleDevice(kind) {
  const media = ctx.media;
  if (!media) return;
  const on = !media.local[kind];
  try {
    await media.setDevice(kind, on);
  } catch (err) {
    if (on) await media.setDevice(kind, false).catch(() => {});
    toast(err && err.code ? errorText(err) : t("call.join.devices_failed", { error: err?.name || "" }));
  }
  render();
}

async function toggleScreen() {
  const media = ctx.media;
  if (!media) return;
  if (media.local.screen) {
    await media.stopScreen();
    render();
    return;
  }
  if (!ctx.myCaps().includes("screen")) {
    toast(t("screen.refused"));
    return;
  }
  try {
    await media.startScreen(render);
  } catch (err) {
    toast(err && err.code ? errorText(err) : t("screen.failed", { error: err?.name || String(err) }));
  }
  render();
}

async function toggleHand() {
  const raised = ctx.state.hands.includes(ctx.me);
  await ctx.request("call_hand", { raised: !raised });
}

async function toggleRecording() {
  const on = !ctx.state.recording;
  await ctx.request("call_record", { on });
}

// -- drawing -------------------------------------------------------------------------------------

function openPanel(name) {
  ctx.ui.panel = ctx.ui.panel === name ? null : name;
  render();
}

// The open panel: [title, signature, build]. A panel is built again only when what it
// shows changed (its signature), so a state push never wipes what someone is typing.
function panelContent() {
  const state = ctx.state;
  const lang = document.documentElement.lang;
  const caps = ctx.myCaps().join(",");
  const people = () =>
    state.participants.map((p) => [p.user_id, p.room, p.audio, p.video, p.screen, p.caps.join("+")]);
  const sign = (...parts) => JSON.stringify([lang, ...parts]);
  switch (ctx.ui.panel) {
    case "chat":
      return [t("ctl.chat"), sign(ctx.myRoom(), caps), () => ctx.chat.panel()];
    case "board":
      return [t("ctl.board"), sign(ctx.myRoom(), caps, ctx.isAdmin()), () => ctx.board.panel()];
    case "participants":
      return [
        t("ctl.participants"),
        sign(people(), state.waiting, state.hands, state.admins, [...ctx.names]),
        () => peoplePanel(ctx),
      ];
    case "settings":
      return [t("ctl.settings"), sign(), settingsPanel];
    case "permissions":
      if (!ctx.isAdmin()) return null;
      return [
        t("ctl.permissions"),
        sign(people(), state.permissions, state.admins, [...ctx.names]),
        () => permissionsPanel(ctx),
      ];
    case "breakout":
      if (!ctx.isAdmin()) return null;
      return [
        t("ctl.breakout"),
        sign(people(), state.breakout, state.admins, [...ctx.names]),
        () => breakoutPanel(ctx),
      ];
    default:
      return null;
  }
}

let shownPanel = null; // {name, signature, el}

function panelElement() {
  const panel = panelContent();
  if (!panel) {
    shownPanel = null;
    return null;
  }
  const [title, signature, build] = panel;
  if (shownPanel && shownPanel.name === ctx.ui.panel && shownPanel.signature === signature) {
    return shownPanel.el;
  }
  const el = h(
    "aside",
    { class: "panel", "aria-label": title, "data-panel": ctx.ui.panel },
    h("button", {
      type: "button",
      class: "link-button close",
      text: "×",
      "aria-label": t("ctl.close_panel"),
      onclick: () => openPanel(ctx.ui.panel),
    }),
    build(),
  );
  shownPanel = { name: ctx.ui.panel, signature, el };
  return el;
}

function settingsPanel() {
  const media = ctx.media;
  const body = h("section", { class: "panel-body" }, h("h2", { text: t("settings.title") }));
  const selects = h("div", {});
  body.append(selects);
  listDevices()
    .then((devices) => {
      for (const [kind, list, label] of [
        ["audio", devices.audioinput, t("settings.microphone")],
        ["video", devices.videoinput, t("settings.camera")],
      ]) {
        const id = `device-${kind}`;
        const select = h(
          "select",
          { id },
          h("option", { value: "", text: t("settings.default") }),
          list.map((d, i) =>
            h("option", {
              value: d.deviceId,
              text: d.label || `${label} ${i + 1}`,
              selected: media?.devices[kind] === d.deviceId,
            }),
          ),
        );
        select.addEventListener("change", async () => {
          try {
            await media?.chooseDevice(kind, select.value);
          } catch (err) {
            toast(t("call.join.devices_failed", { error: err?.name || "" }));
          }
          renderStage();
        });
        selects.append(h("div", { class: "field" }, h("label", { for: id, text: label }), select));
      }
    })
    .catch(() => {});
  body.append(h("div", { class: "field" }, h("span", { text: t("settings.language") }), langButton(render)));
  return body;
}

function toolbar() {
  const media = ctx.media;
  const state = ctx.state;
  const admin = ctx.isAdmin();
  const raised = state.hands.includes(ctx.me);
  const screenOn = Boolean(media?.local.screen);
  const items = [
    button("chat", () => openPanel("chat"), { pressed: ctx.ui.panel === "chat" }),
    button(screenOn ? "screen.stop" : "screen", toggleScreen, { pressed: screenOn }),
    button("board", () => openPanel("board"), { pressed: ctx.ui.panel === "board" }),
    button(raised ? "hand.lower" : "hand", toggleHand, { pressed: raised }),
    button("camera", () => toggleDevice("video"), { pressed: Boolean(media?.local.video) }),
    button("microphone", () => toggleDevice("audio"), { pressed: Boolean(media?.local.audio) }),
    button("leave", leave, { cls: "danger" }),
    button("participants", () => openPanel("participants"), { pressed: ctx.ui.panel === "participants" }),
    button(
      "layout",
      () => {
        ctx.ui.layout = ctx.ui.layout === "grid" ? "speaker" : "grid";
        render();
      },
      { text: t("layout.label", { layout: t(`layout.${ctx.ui.layout}`) }) },
    ),
    button("settings", () => openPanel("settings"), { pressed: ctx.ui.panel === "settings" }),
    button("minimise", () => {
      ctx.ui.minimised = true;
      render();
    }),
  ];
  if (admin) {
    items.push(
      button("permissions", () => openPanel("permissions"), { pressed: ctx.ui.panel === "permissions" }),
      button("breakout", () => openPanel("breakout"), { pressed: ctx.ui.panel === "breakout" }),
      button(state.recording ? "record.stop" : "record.start", toggleRecording, {
        pressed: Boolean(state.recording),
      }),
      button("end_all", () => {
        ctx.ui.confirmEnd = true;
        render();
      }, { cls: "danger" }),
    );
  }
  const bar = h("nav", { class: "toolbar", "aria-label": t("call.toolbar") }, items);
  if (ctx.ui.confirmEnd && admin) {
    bar.append(
      h(
        "div",
        { class: "confirm", role: "alertdialog", "aria-label": t("ctl.end_all.confirm") },
        h("span", { text: t("ctl.end_all.confirm") }),
        h("button", {
          type: "button",
          class: "danger",
          text: t("ctl.end_all"),
          "aria-label": `${t("ctl.end_all")}: ${t("ctl.end_all.confirm")}`,
          onclick: async () => {
            ctx.ui.confirmEnd = false;
            await ctx.request("call_end", {});
          },
        }),
        h("button", {
          type: "button",
          class: "secondary",
          text: t("toast.dismiss"),
          onclick: () => {
            ctx.ui.confirmEnd = false;
            render();
          },
        }),
      ),
    );
  }
  return bar;
}

// The tiles: one per person in my room (camera or their name), one per screen being shared.
function wantedTiles() {
  const state = ctx.state;
  const room = ctx.myRoom();
  const tiles = [];
  for (const p of state.participants) {
    if (p.room !== room) continue;
    const me = p.user_id === ctx.me;
    const stream = me ? ctx.media?.localStream("video") : ctx.remote.get(slotKey(p.user_id, "video"));
    tiles.push({ key: slotKey(p.user_id, "video"), user: p.user_id, kind: "video", stream, me, p });
    const screen = me ? ctx.media?.localStream("screen") : ctx.remote.get(slotKey(p.user_id, "screen"));
    if (screen || p.screen) {
      tiles.push({ key: slotKey(p.user_id, "screen"), user: p.user_id, kind: "screen", stream: screen, me, p });
    }
  }
  return tiles;
}

function initials(name) {
  return name
    .split(" ")
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join("");
}

const tileEls = new Map(); // key -> {el, video, label, track}
const audioEls = new Map(); // key -> <audio>

function renderStage() {
  const stage = document.getElementById("stage");
  if (!stage || !ctx.state) return;
  const tiles = wantedTiles();
  // The big one (speaker layout, minimised): a shared screen, else whoever speaks, else
  // someone else than me.
  const speaking = ctx.speaker && ctx.speaker !== ctx.me ? slotKey(ctx.speaker, "video") : null;
  const featured =
    tiles.find((x) => x.kind === "screen")?.key ||
    (tiles.some((x) => x.key === speaking) ? speaking : null) ||
    tiles.find((x) => !x.me)?.key ||
    tiles[0]?.key;
  const keep = new Set(tiles.map((x) => x.key));
  for (const [key, tile] of tileEls) {
    if (!keep.has(key)) {
      tile.el.remove();
      tileEls.delete(key);
    }
  }
  for (const x of tiles) {
    let tile = tileEls.get(x.key);
    if (!tile) {
      const video = h("video", { autoplay: true, playsinline: true, muted: true });
      video.muted = true;
      const label = h("span", { class: "tile-name" });
      const flags = h("span", { class: "tile-flags" });
      const avatar = h("span", { class: "tile-avatar", "aria-hidden": "true" });
      const el = h(
        "figure",
        { class: "tile", "data-user": x.user, "data-kind": x.kind },
        video,
        avatar,
        h("figcaption", {}, label, flags),
      );
      tile = { el, video, label, flags, avatar, track: null };
      tileEls.set(x.key, tile);
    }
    const name = ctx.name(x.user);
    const text = x.kind === "screen" ? `${name} — ${t("media.screen")}` : x.me ? `${name} (${t("call.you")})` : name;
    tile.label.textContent = text;
    tile.avatar.textContent = initials(name);
    tile.el.setAttribute("aria-label", text);
    const flags = [];
    if (ctx.state.hands.includes(x.user) && x.kind === "video") flags.push(t("tile.hand"));
    if (x.kind === "video" && !x.p.audio) flags.push(t("tile.muted"));
    tile.flags.textContent = flags.join(" · ");
    const track = x.stream ? x.stream.getTracks()[0] : null;
    if (track !== tile.track) {
      tile.track = track;
      tile.video.srcObject = x.stream || null;
    }
    // A remote camera or screen shows while its owner has it on (their slot may stay mapped
    // with nothing flowing when it is off).
    const on = x.me || (x.kind === "video" ? x.p.video : x.p.screen);
    tile.el.dataset.hasVideo = String(Boolean(track) && Boolean(on));
    tile.el.classList.toggle("featured", x.key === featured);
    tile.el.classList.toggle("speaking", ctx.speaker === x.user && x.kind === "video");
  }
  // In the order of wantedTiles, moving only what is out of place: a video element taken
  // out of the page stops playing.
  tiles.forEach((x, i) => {
    const el = tileEls.get(x.key).el;
    if (stage.children[i] !== el) stage.insertBefore(el, stage.children[i] || null);
  });
  renderAudio();
}

function renderAudio() {
  const holder = document.getElementById("audio");
  if (!holder) return;
  const room = ctx.myRoom();
  const wanted = new Map();
  for (const [key, stream] of ctx.remote) {
    const [user, kind] = key.split("/");
    if (kind !== "audio") continue;
    if (ctx.participant(user)?.room === room) wanted.set(key, stream);
  }
  for (const [key, el] of audioEls) {
    if (!wanted.has(key)) {
      el.srcObject = null;
      el.remove();
      audioEls.delete(key);
    }
  }
  for (const [key, stream] of wanted) {
    let el = audioEls.get(key);
    if (!el) {
      el = h("audio", { autoplay: true });
      audioEls.set(key, el);
      holder.append(el);
    }
    if (el.srcObject !== stream) el.srcObject = stream;
  }
}

function screenFor(phase) {
  const wrap = (...children) =>
    h("main", { class: "call-card", "aria-live": "polite" }, h("header", {}, h("span", { class: "brand", text: t("app.title") }), langButton(render)), ...children);
  const name = ctx.state?.name || "";
  if (phase === "loading" || phase === "joining") return wrap(h("p", { text: t("call.loading") }));
  if (phase === "signin") {
    return wrap(h("p", { text: t("signin.needed") }), h("a", { href: "/", class: "button-link", text: t("signin.go") }));
  }
  if (phase === "error") return wrap(h("h1", { text: name || t("call.join.title") }), h("p", { class: "alert", role: "alert", text: ctx.message }), h("a", { href: "/lessons", text: t("call.to_lessons") }));
  if (phase === "notopen") return wrap(h("h1", { text: name }), h("p", { text: ctx.message }));
  if (phase === "waiting") return wrap(h("h1", { text: name }), h("p", { role: "status", text: t("call.waiting") }));
  if (phase === "prejoin") {
    return wrap(
      h("h1", { text: t("call.join.title") }),
      h("p", { class: "call-name", text: name }),
      h("p", { class: "hint", text: t("call.join.hint") }),
      h("button", { type: "button", text: t("call.join.video"), onclick: () => join(true) }),
      h("button", { type: "button", class: "secondary", text: t("call.join.audio"), onclick: () => join(false) }),
    );
  }
  // over
  const title = { left: t("call.left"), ended: t("call.ended") }[ctx.over] || t("call.out");
  const text = {
    ended: t("call.ended.text"),
    removed: t("call.removed"),
    refused: t("call.refused"),
    left: "",
  }[ctx.over];
  return wrap(
    h("h1", { text: title }),
    h("p", { class: "call-name", text: name }),
    text ? h("p", { role: "status", text }) : null,
    ctx.over === "left"
      ? h("button", { type: "button", text: t("call.rejoin"), onclick: () => join(ctx.ui.withVideo) })
      : null,
    h("a", { href: "/lessons", text: t("call.to_lessons") }),
  );
}

// What had the keyboard focus, so a redraw can give it back (a state push redraws the
// toolbar and the changed panel while someone may be tabbing through them).
function focusKey() {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  return { id: el.id, ctl: el.dataset?.ctl, label: el.getAttribute("aria-label") };
}

function restoreFocus(key) {
  if (!key || (document.activeElement && document.activeElement !== document.body)) return;
  const root = app;
  const found =
    (key.id && document.getElementById(key.id)) ||
    (key.ctl && root.querySelector(`[data-ctl="${CSS.escape(key.ctl)}"]`)) ||
    (key.label && root.querySelector(`[aria-label="${CSS.escape(key.label)}"]`));
  found?.focus();
}

let shell = null; // the in-call page's parts that stay: {root, main, stage, head, aside, bar}

function buildShell() {
  const stage = h("section", { id: "stage", class: "stage" });
  const main = h("div", { class: "call-main" }, stage);
  ctx.toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  const head = h("header", { class: "call-head" });
  const bar = h("nav", { class: "toolbar" });
  const root = h("div", { class: "call" }, head, main, bar, ctx.toasts, h("div", { id: "audio", hidden: true }));
  shell = { root, main, stage, head, aside: null, bar };
  app.replaceChildren(root);
}

function swap(part, el) {
  if (shell[part] === el) return;
  if (el) {
    if (shell[part]) shell[part].replaceWith(el);
    else shell.main.append(el);
  } else shell[part]?.remove();
  shell[part] = el;
}

function render() {
  document.title = `${ctx.state?.name || t("call.join.title")} — ${t("app.title")}`;
  if (ctx.phase !== "in" || !ctx.state) {
    tileEls.clear();
    audioEls.clear();
    shownPanel = null;
    shell = null;
    ctx.toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
    app.replaceChildren(screenFor(ctx.phase), ctx.toasts);
    return;
  }
  const focus = focusKey();
  if (!shell || !shell.root.isConnected) buildShell();
  const state = ctx.state;
  const room = ctx.myRoom();
  shell.root.dataset.layout = ctx.ui.layout;
  shell.root.dataset.minimised = String(ctx.ui.minimised);
  shell.stage.setAttribute("aria-label", t("call.stage"));
  swap(
    "head",
    h(
      "header",
      { class: "call-head" },
      h("h1", { class: "call-title", text: state.name }),
      h("span", { class: "room-label", "data-room": room, text: ctx.roomLabel(room) }),
      state.recording ? h("span", { class: "rec", role: "status", text: `● ${t("call.recording")}` }) : null,
      langButton(render),
    ),
  );
  swap("aside", panelElement());
  const mini = ctx.ui.minimised
    ? h(
        "div",
        { class: "mini-bar" },
        h("span", { text: state.name }),
        button("expand", () => {
          ctx.ui.minimised = false;
          render();
        }),
      )
    : null;
  swap("bar", mini || toolbar());
  renderStage();
  restoreFocus(focus);
}

// -- start ---------------------------------------------------------------------------------------

async function main() {
  setLang(chooseLang());
  const token = savedToken();
  if (!token) {
    ctx.phase = "signin";
    render();
    return;
  }
  render();
  const session = new Session({ token });
  ctx.session = session;
  ctx.chat = new CallChat(ctx);
  ctx.board = new CallBoard(ctx);
  session.on("call", onCallPush);
  // Waiting for the start: the chat the call belongs to says when it opens.
  session.on("ev", (event) => {
    if (event.type === "call" && event.state_key === callId && ctx.phase === "notopen") loadState();
  });
  session.onState((state, info) => {
    if (state === "closed" && info.revoked) {
      ctx.phase = "signin";
      render();
    } else if (state === "open" && info.resumed && (ctx.phase === "in" || ctx.phase === "waiting")) {
      // The server took us out when the connection dropped: in again, with a fresh offer.
      ctx.state = null;
      join(ctx.ui.withVideo);
    }
  });
  // Escape closes the open panel (and the "end for everyone" question).
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || ctx.phase !== "in") return;
    if (ctx.ui.confirmEnd) ctx.ui.confirmEnd = false;
    else if (ctx.ui.panel) ctx.ui.panel = null;
    else return;
    render();
  });
  try {
    const me = await session.connect();
    ctx.me = me.user_id;
  } catch {
    ctx.phase = "signin";
    render();
    return;
  }
  await loadState();
}

main();
