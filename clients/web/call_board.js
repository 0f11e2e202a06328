// The interactive whiteboard (beta) of the room you are in: a canvas showing the board's
// items (read with `whiteboard`, then `whiteboard` pushes), strokes drawn with a pointer go
// out with `whiteboard_draw`, and admins clear it with `whiteboard_clear`. Coordinates are
// fractions of the board (PROTOCOL.md "Whiteboard").

import { h } from "./dom.js";
import { t } from "./i18n.js";

const ASPECT = 9 / 16;
const WIDTH = 0.004; // of the board's width
const MAX_POINTS = 2000; // calls.whiteboard_max_points (the default)
// Points sent in one item: 1,000 points are ~19 KB of content, under limits.max_content_bytes
// (32 KB); 2,000 were not.
const PIECE_POINTS = 1000;
const COLORS = [
  ["black", "#1d1f23"],
  ["blue", "#1e88e5"],
  ["red", "#d32f2f"],
  ["green", "#2e7d32"],
];

export class CallBoard {
  constructor(ctx) {
    this.ctx = ctx;
    this.boardId = null;
    this.items = []; // stored items since the last clear, not erased
    this.color = COLORS[0][1];
    this.canvas = null;
    this.stroke = null;
  }

  async sync(force = false) {
    const room = this.ctx.myRoom();
    if (!force && room === this.boardId) return;
    this.boardId = room;
    this.items = [];
    try {
      const out = await this.ctx.session.request("whiteboard", { call_id: this.ctx.callId });
      if (out.board !== this.boardId) return;
      // Pushes that came while the replay was read, and are newer than it, stay.
      const newer = this.items.filter((i) => i.seq >= out.next_seq);
      const drawn = out.items.filter((i) => i.item.type !== "clear" && i.item.type !== "erase");
      this.items = [...drawn, ...newer];
    } catch {
      // Not in the call yet: the next sync reads it.
      this.boardId = null;
    }
    this.draw();
  }

  onPush(push) {
    if (push.board !== this.boardId) return;
    const stored = push.item;
    const kind = stored.item.type;
    if (kind === "clear") this.items = [];
    else if (kind === "erase") this.items = this.items.filter((i) => i.seq !== stored.item.target);
    else if (!this.items.some((i) => i.seq === stored.seq)) this.items.push(stored);
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    if (!canvas || !canvas.isConnected) return;
    const rect = canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width));
    const hgt = Math.max(1, Math.round(w * ASPECT));
    if (canvas.width !== w || canvas.height !== hgt) {
      canvas.width = w;
      canvas.height = hgt;
    }
    const g = canvas.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, w, hgt);
    g.lineCap = "round";
    g.lineJoin = "round";
    for (const stored of this.items) paint(g, stored.item, w, hgt);
    if (this.stroke) paint(g, this.stroke, w, hgt);
    canvas.dataset.items = String(this.items.length);
  }

  _point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) / rect.width;
    const y = (event.clientY - rect.top) / rect.height;
    return [clamp(x), clamp(y)];
  }

  _bind(canvas) {
    canvas.addEventListener("pointerdown", (event) => {
      if (!this.ctx.myCaps().includes("whiteboard")) return;
      canvas.setPointerCapture(event.pointerId);
      this.stroke = { type: "stroke", points: [this._point(event)], color: this.color, width: WIDTH };
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!this.stroke) return;
      // The browser merges moves into one event per frame; the merged ones keep the detail.
      const moves = event.getCoalescedEvents?.() || [];
      for (const move of moves.length ? moves : [event]) this.stroke.points.push(this._point(move));
      this.draw();
    });
    const finish = async () => {
      const stroke = this.stroke;
      this.stroke = null;
      if (!stroke) return;
      const points = thin(stroke.points).map(([x, y]) => [round(x), round(y)]);
      // In pieces that each fit one event's content (a long stroke whole was refused as
      // too large, and lost), each starting where the last ended so the line is unbroken.
      for (let at = 0; at === 0 || at < points.length - 1; at += PIECE_POINTS - 1) {
        const piece = { ...stroke, points: points.slice(at, at + PIECE_POINTS) };
        const out = await this.ctx.request("whiteboard_draw", { item: piece });
        if (!out) break; // refused: the error is shown
        if (!this.items.some((i) => i.seq === out.seq)) {
          this.items.push({ seq: out.seq, author: this.ctx.me, item: piece });
        }
      }
      this.draw();
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
  }

  panel() {
    const ctx = this.ctx;
    this.canvas = h("canvas", {
      class: "board",
      role: "img",
      "aria-label": t("board.canvas"),
      tabindex: "0",
    });
    this._bind(this.canvas);
    const may = ctx.myCaps().includes("whiteboard");
    const swatches = COLORS.map(([name, value]) =>
      h("button", {
        type: "button",
        class: `swatch swatch-${name}`,
        "aria-label": `${t("board.color")}: ${t(`board.color.${name}`)}`,
        "aria-pressed": String(this.color === value),
        onclick: (event) => {
          this.color = value;
          for (const b of event.currentTarget.parentElement.children) b.setAttribute("aria-pressed", "false");
          event.currentTarget.setAttribute("aria-pressed", "true");
        },
      }),
    );
    const tools = h("div", { class: "board-tools", role: "group", "aria-label": t("board.color") }, swatches);
    const clear = ctx.isAdmin()
      ? h("button", {
          type: "button",
          class: "secondary",
          text: t("board.clear"),
          onclick: () => ctx.request("whiteboard_clear", {}),
        })
      : null;
    const body = h(
      "section",
      { class: "panel-body board-panel" },
      h("h2", { text: t("board.title") }),
      may ? tools : h("p", { class: "hint", text: t("board.no_access") }),
      this.canvas,
      clear,
    );
    requestAnimationFrame(() => this.draw());
    this.sync();
    return body;
  }
}

function clamp(v) {
  return Math.min(1, Math.max(0, v));
}

function round(v) {
  return Math.round(v * 10000) / 10000;
}

// At most MAX_POINTS points: every n-th one, the last always kept.
function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const step = Math.ceil(points.length / (MAX_POINTS - 1));
  const out = points.filter((_, i) => i % step === 0);
  out.push(points[points.length - 1]);
  return out;
}

function paint(g, item, w, hgt) {
  g.strokeStyle = item.color || "#000000";
  g.fillStyle = item.color || "#000000";
  g.lineWidth = Math.max(1, (item.width || WIDTH) * w);
  if (item.type === "stroke") {
    const [first, ...rest] = item.points;
    g.beginPath();
    g.moveTo(first[0] * w, first[1] * hgt);
    if (rest.length === 0) g.lineTo(first[0] * w + 0.1, first[1] * hgt);
    for (const [x, y] of rest) g.lineTo(x * w, y * hgt);
    g.stroke();
  } else if (item.type === "shape") {
    const x1 = item.x1 * w;
    const y1 = item.y1 * hgt;
    const x2 = item.x2 * w;
    const y2 = item.y2 * hgt;
    g.beginPath();
    if (item.kind === "rect") g.rect(x1, y1, x2 - x1, y2 - y1);
    else if (item.kind === "ellipse") {
      g.ellipse((x1 + x2) / 2, (y1 + y2) / 2, Math.abs(x2 - x1) / 2, Math.abs(y2 - y1) / 2, 0, 0, 2 * Math.PI);
    } else {
      g.moveTo(x1, y1);
      g.lineTo(x2, y2);
      if (item.kind === "arrow") {
        const a = Math.atan2(y2 - y1, x2 - x1);
        const len = 10 + g.lineWidth * 2;
        g.moveTo(x2, y2);
        g.lineTo(x2 - len * Math.cos(a - 0.4), y2 - len * Math.sin(a - 0.4));
        g.moveTo(x2, y2);
        g.lineTo(x2 - len * Math.cos(a + 0.4), y2 - len * Math.sin(a + 0.4));
      }
    }
    if (item.fill) g.fill();
    g.stroke();
  } else if (item.type === "text") {
    g.font = `${Math.max(8, (item.size || 0.02) * w)}px system-ui, sans-serif`;
    g.textBaseline = "top";
    item.text.split("\n").forEach((line, i) => {
      g.fillText(line, item.x * w, item.y * hgt + i * (item.size || 0.02) * w * 1.2);
    });
  }
}
