"""The machine's ceiling for one forwarded copy: SRTP protect + UDP send, nothing else.

    python -m bench.srtp_ceiling --ports P1,P2,... [--seconds 2] [--size 1100] [--interval-ms 0]

A child of ``bench.sfu``, pinned to the server's CPU: it protects a packet of ``--size``
bytes with a libsrtp session per destination (AES-256-GCM, what aiortc and Chromium
negotiate) and sends it to each of the ``--ports`` on 127.0.0.1 in turn, through the same
primitives as the SFU's sender (``media.aiortc_hooks``: libsrtp through pylibsrtp's binding,
``socket.sendto`` from the sender's buffer), for ``--seconds``. The parent drains the ports,
so the kernel delivers each datagram as it does to real subscribers. Prints one JSON line:
``packets_per_cpu_s`` (user + system CPU of this process while sending). The SFU's own
``forwarded_packets_per_server_cpu_s`` divided by this is the share of the machine's
protect-and-send capacity it reaches, a ratio that holds when the machine's speed drifts.

``--interval-ms`` paces it as the SFU is paced: one copy to every port (one incoming packet's
fan-out), then a sleep until the next, as the daemon waits for the next packet. On this
shared VM a CPU that slept even a millisecond runs the next burst much slower (caches and
clocks start cold), so only the paced figure compares with a forwarder at the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

from pylibsrtp import Policy, Session

from media.aiortc_hooks import srtp_context, srtp_ffi, srtp_lib

KEY_BYTES = 44  # AES-256-GCM: 32-byte key + 12-byte salt


def run(ports: list[int], seconds: float, size: int, interval_s: float = 0.0) -> dict[str, float]:
    sessions = [
        Session(
            Policy(
                key=os.urandom(KEY_BYTES),
                ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
            )
        )
        for _ in ports
    ]
    contexts = [srtp_context(s) for s in sessions]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    buffer = srtp_ffi.new("char[]", 1600)
    view = memoryview(srtp_ffi.buffer(buffer))
    length = srtp_ffi.new("int *")
    body = bytes([0x80, 96]) + bytes(10) + os.urandom(size)
    addresses = [("127.0.0.1", p) for p in ports]
    sent = dropped = seq = 0
    bursts = 1 if interval_s else 100  # the clock is read every bursts x len(ports) copies
    cpu0, deadline = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        if interval_s:
            time.sleep(interval_s)
        for _ in range(bursts):
            seq = (seq + 1) & 0xFFFF
            for context, address in zip(contexts, addresses, strict=True):
                view[: len(body)] = body
                view[2:4] = seq.to_bytes(2, "big")
                length[0] = len(body)
                if srtp_lib.srtp_protect(context, buffer, length):
                    raise RuntimeError("libsrtp refused to protect")
                try:
                    sock.sendto(view[: length[0]], address)
                    sent += 1
                except BlockingIOError:
                    dropped += 1
    cpu = time.process_time() - cpu0
    return {"packets_per_cpu_s": round(sent / cpu) if cpu else 0.0, "dropped": dropped}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ports", required=True, help="comma-separated UDP ports on 127.0.0.1")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--size", type=int, default=1100, help="payload bytes")
    p.add_argument(
        "--interval-ms", type=float, default=0.0, help="sleep between fan-outs (0: none)"
    )
    args = p.parse_args()
    ports = [int(x) for x in args.ports.split(",")]
    print(json.dumps(run(ports, args.seconds, args.size, args.interval_ms / 1000)))


if __name__ == "__main__":
    main()
