"""Real Chromium through the SFU (the guard of media/aiortc_hooks.py): a browser publishes
its fake camera and microphone and receives an aiortc participant's; each side decodes the
other's frames, and the server forwards without decoding. The browser speaks the protocol
of PROTOCOL.md "Media" directly (two RTCPeerConnections, no trickle ICE), from a page the
daemon serves on http://127.0.0.1 (getUserMedia needs a secure context)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from tests.browser import CHROMIUM, FLAGS
from tests.sfu_world import assert_clean, media_stats, producers, world

MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]

# The browser side: join with camera + microphone, answer every media_offer push.
JOIN = """
async ([url, token, callId]) => {
  const ws = new WebSocket(url, "sferum.v1.json");
  const pending = new Map();
  let nextId = 1;
  const st = window.__sfu = {slots: {}, offers: 0, errors: [], ws};
  const request = st.request = (op, fields) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, {resolve, reject});
    ws.send(JSON.stringify({id, op, ...fields}));
  });
  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  const recv = st.recv = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  let chain = Promise.resolve();
  ws.onmessage = (m) => {
    const frame = JSON.parse(m.data);
    if (frame.id !== undefined && pending.has(frame.id)) {
      const p = pending.get(frame.id);
      pending.delete(frame.id);
      frame.error ? p.reject(new Error(frame.error.code)) : p.resolve(frame.ok);
      return;
    }
    const call = frame.call;
    if (!call || call.call_id !== callId) return;
    if (call.type === "slots") st.slots = call.slots;
    if (call.type === "media_offer") {
      chain = chain.then(async () => {
        await recv.setRemoteDescription({type: "offer", sdp: call.sdp});
        await recv.setLocalDescription(await recv.createAnswer());
        await gathered(recv);
        st.slots = call.slots;
        await request("call_media_answer",
                      {call_id: callId, version: call.version, answer: recv.localDescription.sdp});
        st.offers += 1;
      }).catch((e) => st.errors.push(String(e)));
    }
  };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  await request("auth", {token});
  const media = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 320, height: 240}});
  const send = st.send = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  const tracks = {};
  const transceivers = media.getTracks().map(
    (t) => [t.kind, send.addTransceiver(t, {direction: "sendonly"})]);
  await send.setLocalDescription(await send.createOffer());
  await gathered(send);
  for (const [kind, tr] of transceivers) tracks[tr.mid] = kind;
  const joined = await request(
    "call_join", {call_id: callId, offer: send.localDescription.sdp, tracks});
  await send.setRemoteDescription({type: "answer", sdp: joined.answer});
  return tracks;
}
"""

# The camera's transceiver stopped, the send connection renegotiated (call_publish).
STOP_CAMERA = """
async ([callId]) => {
  const st = window.__sfu;
  const video = st.send.getTransceivers().find((t) => t.sender.track?.kind === "video");
  video.stop();
  await st.send.setLocalDescription(await st.send.createOffer());
  await new Promise((resolve) => {
    if (st.send.iceGatheringState === "complete") return resolve();
    st.send.addEventListener("icegatheringstatechange", () => {
      if (st.send.iceGatheringState === "complete") resolve();
    });
  });
  const audio = st.send.getTransceivers().find((t) => t.sender.track?.kind === "audio");
  const result = await st.request(
    "call_publish",
    {call_id: callId, offer: st.send.localDescription.sdp, tracks: {[audio.mid]: "audio"}});
  await st.send.setRemoteDescription({type: "answer", sdp: result.answer});
  return "ok";
}
"""

# What the browser decoded, per slot owner and kind (getStats of the receive connection).
STATS = """
async () => {
  const st = window.__sfu;
  const out = {};
  const mids = {};
  for (const t of st.recv.getTransceivers()) mids[t.receiver.track.id] = t.mid;
  (await st.recv.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    const mid = r.mid ?? mids[r.trackIdentifier];
    const owner = st.slots[mid];
    if (!owner) return;
    const key = owner.user_id + "/" + owner.kind;
    out[key] = {packets: r.packetsReceived, frames: r.framesDecoded ?? 0};
  });
  return {stats: out, errors: st.errors, offers: st.offers};
}
"""


async def test_chromium_and_an_aiortc_participant_exchange_audio_and_video(
    daemon_factory: Any,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    async with world(daemon_factory, ("teacher", "pupil", "guest")) as w:
        teacher = w.people["teacher"]
        await teacher.join()
        t, p = w.uid("teacher"), w.uid("pupil")
        # The browser is the pupil now: their Python connection goes.
        token = w.clients["pupil"].token
        await w.people.pop("pupil").close()
        await w.clients["pupil"].close()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=FLAGS + MEDIA_FLAGS, headless=True
            )
            try:
                page = await (await browser.new_context()).new_page()
                await page.goto(w.daemon.url + "/lessons")
                ws_url = w.daemon.url.replace("http", "ws", 1) + "/v1/ws"
                tracks = await page.evaluate(JOIN, [ws_url, token, w.call_id])
                assert sorted(tracks.values()) == ["audio", "video"]

                # The browser's camera and microphone reach the aiortc teacher, decoded.
                await teacher.wait_for(
                    lambda: teacher.decoded(p, "video") > 5 and teacher.decoded(p, "audio") > 5,
                    timeout=30,
                )
                # The teacher's reach the browser, decoded (getStats framesDecoded).
                seen: dict[str, Any] = {}

                async def browser_decoded(user: str) -> None:
                    loop = asyncio.get_running_loop()
                    end = loop.time() + 30.0
                    while True:
                        seen.update(await page.evaluate(STATS))
                        s = seen["stats"]
                        if (
                            s.get(f"{user}/video", {}).get("frames", 0) > 5
                            and s.get(f"{user}/audio", {}).get("packets", 0) > 20
                        ):
                            return
                        assert loop.time() < end, f"the browser decoded nothing: {seen}"
                        await asyncio.sleep(0.2)

                await browser_decoded(t)
                assert seen["errors"] == [] and seen["offers"] == 1
                # A newcomer: the browser's receive connection grows by renegotiation.
                guest = w.people["guest"]
                await guest.join()
                await browser_decoded(w.uid("guest"))
                assert seen["errors"] == [] and seen["offers"] == 2
                await guest.wait_for(lambda: guest.decoded(p, "video") > 5, timeout=30)
                sent = producers(w.daemon, w.call_id)[(p, "video")]
                assert sent["mime_type"] == "video/VP8" and sent["packets"] > 0
                stats = media_stats(w.daemon)["calls"][w.call_id]
                assert stats["peers"][p]["send"]["decoded"] == 0  # forwarded, never decoded
                assert sent["keyframe_requests"] >= 1  # the teacher's slot started: a PLI
                # The browser stops its camera transceiver (a port-0 m-line) and renegotiates:
                # its video producer goes, the others' slot for it goes idle.
                assert await page.evaluate(STOP_CAMERA, [w.call_id]) == "ok"
                await teacher.wait_for(
                    lambda: all(
                        s != {"user_id": p, "kind": "video"} for s in teacher.slots.values()
                    )
                )
                assert (p, "video") not in producers(w.daemon, w.call_id)
                assert (p, "audio") in producers(w.daemon, w.call_id)
            finally:
                await browser.close()
    assert_clean(w.daemon)
