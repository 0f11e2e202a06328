// The browser's media client for one call, independent of any page: it speaks the call's
// media signalling (PROTOCOL.md "Calls" -> "Media") over any object with
// request(op, fields) -> Promise and on(pushKey, handler) -> unsubscribe (a Session).
//
//   const media = new MediaSession(session, callId);
//   media.addEventListener("track", (e) => e.detail);   // {userId, kind, stream, mid}
//   media.addEventListener("trackended", (e) => ...);   // {userId, kind, mid}
//   media.addEventListener("speaker", (e) => ...);      // {userId, room}
//   await media.openDevices({ audio: true, video: true });
//   const joined = await media.join();                  // call_join's result
//   await media.startScreen(); await media.stopScreen();
//   await media.receiverStats();                        // [{userId, kind, framesDecoded, ...}]
//   media.close();
//
// Two peer connections, as the server wants them: the send one (we offer; sendonly
// transceivers for microphone, camera and, once shared, the screen; `tracks` tells the
// server which m-line carries what) and the receive one (the server offers with
// `media_offer`; `slots` says whose audio or video each receiving m-line carries now, and
// changes without new SDP when people move between rooms). No trickle ICE: every
// description goes out with all its candidates.

const GATHER_TIMEOUT_MS = 5000;

// Resolves once the connection has gathered its candidates (or after a timeout: what has
// been gathered by then goes out).
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

export function slotKey(userId, kind) {
  return `${userId}/${kind}`;
}

export async function listDevices() {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    audioinput: all.filter((d) => d.kind === "audioinput"),
    videoinput: all.filter((d) => d.kind === "videoinput"),
  };
}

export class MediaSession extends EventTarget {
  constructor(signalling, callId, { iceServers = [] } = {}) {
    super();
    this.signalling = signalling;
    this.callId = callId;
    this.config = { iceServers, bundlePolicy: "max-bundle" };
    this.local = { audio: null, video: null, screen: null }; // MediaStreamTrack or null
    this.devices = { audio: null, video: null }; // chosen deviceId
    this.send = null; // RTCPeerConnection we offer on
    this.senders = {}; // kind -> RTCRtpTransceiver
    this.screenPublished = false; // the server answered an offer with the screen m-line
    this.recv = null; // RTCPeerConnection the server offers on
    this.recvVersion = 0;
    this.slots = {}; // mid -> {user_id, kind} | null
    this.recvTracks = new Map(); // mid -> MediaStreamTrack
    this.shown = new Map(); // mid -> {userId, kind, stream} as last emitted
    this.speaker = null;
    this.closed = false;
    this._recvChain = Promise.resolve();
    this._unsubscribe = signalling.on("call", (push) => this._onPush(push));
  }

  // -- local devices ------------------------------------------------------------------------

  // Opens the microphone and/or camera (the chosen devices, if any). A kind that can't be
  // opened stays null; the error of the first failure is returned for the page to show.
  async openDevices({ audio = true, video = true } = {}) {
    let failure = null;
    for (const kind of ["audio", "video"]) {
      if (!(kind === "audio" ? audio : video) || this.local[kind]) continue;
      try {
        this.local[kind] = await this._capture(kind);
      } catch (err) {
        failure = failure || err;
      }
    }
    return failure;
  }

  async _capture(kind) {
    const id = this.devices[kind];
    const constraints = id ? { deviceId: { exact: id } } : true;
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints });
    return stream.getTracks()[0];
  }

  localStream(kind) {
    const track = this.local[kind];
    return track ? new MediaStream([track]) : null;
  }

  // -- the send connection ------------------------------------------------------------------

  _ensureSend() {
    if (this.send) return;
    this.send = new RTCPeerConnection(this.config);
    // Both m-lines from the start, even with a device off: turning it on later needs no
    // renegotiation (the track goes into the m-line that is there).
    for (const kind of ["audio", "video"]) {
      this.senders[kind] = this.send.addTransceiver(this.local[kind] || kind, {
        direction: "sendonly",
      });
    }
  }

  _tracksMap() {
    const tracks = {};
    for (const [kind, transceiver] of Object.entries(this.senders)) {
      if (transceiver.mid !== null && !transceiver.stopped) tracks[transceiver.mid] = kind;
    }
    return tracks;
  }

  async _offer() {
    const offer = await this.send.createOffer();
    await this.send.setLocalDescription(offer);
    await gathered(this.send);
    return this.send.localDescription.sdp;
  }

  // call_join with our offer: {joined, answer, call}. Not joined (the waiting room): call
  // it again once admitted.
  async join() {
    this._ensureSend();
    if (this.send.signalingState !== "stable") {
      await this.send.setLocalDescription({ type: "rollback" });
    }
    const offer = await this._offer();
    // The join's m-lines are the default ones (audio, then camera video): no `tracks` map.
    const result = await this.signalling.request("call_join", { call_id: this.callId, offer });
    if (result.joined && result.answer) {
      await this.send.setRemoteDescription({ type: "answer", sdp: result.answer });
    }
    return result;
  }

  async _publish() {
    const offer = await this._offer();
    try {
      const result = await this.signalling.request("call_publish", {
        call_id: this.callId,
        offer,
        tracks: this._tracksMap(),
      });
      await this.send.setRemoteDescription({ type: "answer", sdp: result.answer });
    } catch (err) {
      if (this.send.signalingState === "have-local-offer") {
        await this.send.setLocalDescription({ type: "rollback" });
      }
      throw err;
    }
  }

  async _media(kind, on) {
    await this.signalling.request("call_media", { call_id: this.callId, kind, on });
  }

  // The microphone or camera on or off. Off stops the device (its light goes out) and the
  // sender sends nothing; on opens it again on the same m-line (no renegotiation).
  async setDevice(kind, on) {
    if (on) {
      if (!this.local[kind]) this.local[kind] = await this._capture(kind);
      if (this.senders[kind]) await this.senders[kind].sender.replaceTrack(this.local[kind]);
      await this._media(kind, true);
    } else {
      await this._media(kind, false);
      if (this.senders[kind]) await this.senders[kind].sender.replaceTrack(null);
      this.local[kind]?.stop();
      this.local[kind] = null;
    }
  }

  // Another microphone or camera (settings): swapped in place while sending.
  async chooseDevice(kind, deviceId) {
    this.devices[kind] = deviceId || null;
    if (!this.local[kind]) return;
    const next = await this._capture(kind);
    this.local[kind].stop();
    this.local[kind] = next;
    if (this.senders[kind]) await this.senders[kind].sender.replaceTrack(next);
  }

  // The screen share: the first one adds an m-line (call_publish with it as "screen"); later
  // ones reuse it. The browser's "stop sharing" ends it too (onEnded is told).
  async startScreen(onEnded = () => {}) {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = stream.getVideoTracks()[0];
    this._ensureSend();
    try {
      if (!this.senders.screen) {
        this.senders.screen = this.send.addTransceiver(track, { direction: "sendonly" });
      } else {
        await this.senders.screen.sender.replaceTrack(track);
      }
      // Until the server took the m-line (a refused call_publish rolls the offer back),
      // every share offers it again.
      if (!this.screenPublished) {
        await this._publish();
        this.screenPublished = true;
      }
      await this._media("screen", true);
    } catch (err) {
      track.stop();
      if (this.senders.screen) await this.senders.screen.sender.replaceTrack(null);
      throw err;
    }
    this.local.screen = track;
    track.addEventListener("ended", () => {
      if (this.local.screen === track) this.stopScreen().finally(onEnded);
    });
    return track;
  }

  async stopScreen() {
    const track = this.local.screen;
    this.local.screen = null;
    if (this.senders.screen) await this.senders.screen.sender.replaceTrack(null);
    track?.stop();
    try {
      await this._media("screen", false);
    } catch {
      // Already off on the server (a revoked permission turns it off there first).
    }
  }

  // -- the receive connection ---------------------------------------------------------------

  _onPush(push) {
    if (!push || push.call_id !== this.callId || this.closed) return;
    if (push.type === "media_offer") {
      this._recvChain = this._recvChain
        .then(() => this._answer(push))
        .catch((err) => this._fail("media_offer", err));
    } else if (push.type === "slots") {
      this._recvChain = this._recvChain.then(() => this._applySlots(push.slots || {}));
    } else if (push.type === "speaker") {
      this.speaker = push.user_id || null;
      this._emit("speaker", { userId: this.speaker, room: push.room });
    }
  }

  _ensureRecv() {
    if (this.recv) return;
    this.recv = new RTCPeerConnection(this.config);
    this.recv.addEventListener("track", (event) => {
      const mid = event.transceiver.mid;
      this.recvTracks.set(mid, event.track);
      this._show(mid);
    });
  }

  async _answer(push) {
    if (typeof push.version === "number" && push.version <= this.recvVersion) return;
    this._ensureRecv();
    await this.recv.setRemoteDescription({ type: "offer", sdp: push.sdp });
    const answer = await this.recv.createAnswer();
    await this.recv.setLocalDescription(answer);
    await gathered(this.recv);
    this.recvVersion = push.version;
    await this.signalling.request("call_media_answer", {
      call_id: this.callId,
      version: push.version,
      answer: this.recv.localDescription.sdp,
    });
    this._applySlots(push.slots || {});
  }

  _applySlots(slots) {
    this.slots = { ...slots };
    for (const mid of new Set([...Object.keys(this.slots), ...this.shown.keys()])) {
      this._show(mid);
    }
    this._emit("slots", { slots: this.slots });
  }

  // Tells the page what a receiving m-line shows now: a track for (user, kind), or that
  // the (user, kind) it showed is gone.
  _show(mid) {
    const slot = this.slots[mid] || null;
    const track = this.recvTracks.get(mid);
    const was = this.shown.get(mid);
    if (was && (!slot || !track || was.userId !== slot.user_id || was.kind !== slot.kind)) {
      this.shown.delete(mid);
      this._emit("trackended", { userId: was.userId, kind: was.kind, mid });
    }
    if (slot && track && !this.shown.has(mid)) {
      const shown = { userId: slot.user_id, kind: slot.kind, stream: new MediaStream([track]) };
      this.shown.set(mid, shown);
      this._emit("track", { ...shown, mid });
    }
  }

  // -- stats (the tests read them; a page may show them) -------------------------------------

  async receiverStats() {
    const out = [];
    if (!this.recv) return out;
    for (const transceiver of this.recv.getTransceivers()) {
      const slot = this.slots[transceiver.mid];
      if (!slot) continue;
      const report = await transceiver.receiver.getStats();
      let inbound = null;
      report.forEach((s) => {
        if (s.type === "inbound-rtp") inbound = s;
      });
      out.push({
        mid: transceiver.mid,
        userId: slot.user_id,
        kind: slot.kind,
        framesDecoded: inbound?.framesDecoded ?? 0,
        packetsReceived: inbound?.packetsReceived ?? 0,
        bytesReceived: inbound?.bytesReceived ?? 0,
      });
    }
    return out;
  }

  // Frames decoded so far of someone's camera or screen (0 when nothing is received).
  async framesDecoded(userId, kind = "video") {
    const stats = await this.receiverStats();
    return stats
      .filter((s) => s.userId === userId && s.kind === kind)
      .reduce((sum, s) => sum + s.framesDecoded, 0);
  }

  connectionStates() {
    return {
      send: this.send ? this.send.connectionState : null,
      recv: this.recv ? this.recv.connectionState : null,
    };
  }

  // -- the end --------------------------------------------------------------------------------

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _fail(stage, err) {
    console.error(`media: ${stage} failed`, err);
    this._emit("error", { stage, error: err });
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this._unsubscribe?.();
    for (const track of Object.values(this.local)) track?.stop();
    this.local = { audio: null, video: null, screen: null };
    this.send?.close();
    this.recv?.close();
    for (const [mid, was] of this.shown) {
      this._emit("trackended", { userId: was.userId, kind: was.kind, mid });
    }
    this.shown.clear();
  }
}
