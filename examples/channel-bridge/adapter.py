#!/usr/bin/env python3
"""A switchboard channel-bridge adapter for a pretend platform kept in files.

The "platform" is a state directory:

- inbox.jsonl      customer messages to send, one JSON object a line:
                   {"id", "from", "text", "sent_at"} (optional "display_name")
- acked.json       {message id: {"session", "seq"}} for every message switchboard
                   acknowledged (durable); rewritten atomically after each ack
- delivered.jsonl  agents' replies as the customer "received" them, one line per
                   delivery_id, fsync'd before switchboard is told `delivered`

A restart resumes: unacked messages are sent again (switchboard answers
`duplicate: true` for those it already stored) and a `deliver` already in
delivered.jsonl is answered `delivered` without being recorded twice.

Needs Python 3 and the `websockets` package (Debian: python3-websockets).
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import websockets

WINDOW = 8  # messages sent and not yet acked, at most


def log(*parts):
    print("adapter:", *parts, file=sys.stderr, flush=True)


class Platform:
    """The state directory: what to send, what was acked, what was delivered."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.acked = self._read_json("acked.json", {})
        self.delivered = set()
        path = os.path.join(self.dir, "delivered.jsonl")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as lines:
                self.delivered = {json.loads(line)["delivery_id"] for line in lines if line.strip()}

    def _read_json(self, name, default):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return default
        with open(path, encoding="utf-8") as file:
            return json.load(file)

    def unacked(self):
        """The inbox's messages without an ack, in the inbox's order."""
        path = os.path.join(self.dir, "inbox.jsonl")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as lines:
            messages = [json.loads(line) for line in lines if line.strip()]
        return [m for m in messages if m["id"] not in self.acked]

    def record_ack(self, ack):
        self.acked[ack["id"]] = {"session": ack["session"], "seq": ack["seq"]}
        path = os.path.join(self.dir, "acked.json")
        with open(path + ".tmp", "w", encoding="utf-8") as file:
            json.dump(self.acked, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(path + ".tmp", path)

    def record_delivery(self, frame):
        """Appends the reply once; False if it was already there."""
        if frame["delivery_id"] in self.delivered:
            return False
        line = {k: frame.get(k) for k in ("delivery_id", "to", "text", "context")}
        with open(os.path.join(self.dir, "delivered.jsonl"), "a", encoding="utf-8") as file:
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        self.delivered.add(frame["delivery_id"])
        return True


def connect(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    major = int(websockets.__version__.split(".")[0])
    if major >= 14:  # the new asyncio client
        return websockets.connect(url, additional_headers=headers)
    return websockets.connect(url, extra_headers=headers)


async def session(ws, platform, delay):
    """One connection: send what is unacked, answer deliveries, until it closes."""
    pending = platform.unacked()
    window = asyncio.Semaphore(WINDOW)
    log(f"connected; {len(pending)} message(s) to send, {len(platform.acked)} acked before")

    async def send_all():
        for message in pending:
            await window.acquire()
            await ws.send(json.dumps({"type": "message", **message}, ensure_ascii=False))
            if delay:
                await asyncio.sleep(delay)

    sender = asyncio.create_task(send_all())
    try:
        async for text in ws:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "ack":
                window.release()
                platform.record_ack(frame)
                if len(platform.acked) % 25 == 0 or frame["duplicate"]:
                    dup = " (duplicate)" if frame["duplicate"] else ""
                    log(f"acked {frame['id']}{dup}; {len(platform.acked)} acked")
            elif kind == "deliver":
                if delay:
                    await asyncio.sleep(delay)
                new = platform.record_delivery(frame)
                log(f"delivered {frame['delivery_id']}" + ("" if new else " (seen before)"))
                await ws.send(json.dumps({"type": "delivered", "delivery_id": frame["delivery_id"]}))
            elif kind == "error":
                window.release()
                log(f"error on {frame.get('id')}: {frame.get('code')}: {frame.get('message')}")
            else:
                log(f"unexpected frame: {text}")
    finally:
        sender.cancel()


async def run(args):
    platform = Platform(args.state_dir)
    while True:
        try:
            async with connect(args.url, args.token) as ws:
                await session(ws, platform, args.delay_ms / 1000)
            log("connection closed; reconnecting")
        except (OSError, websockets.exceptions.WebSocketException) as err:
            log(f"connection failed ({err}); retrying")
        await asyncio.sleep(0.5)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://host:port/api/v1/channels/<name>/bridge")
    parser.add_argument("--token", required=True, help="the account's secret")
    parser.add_argument("--state-dir", required=True, help="where inbox.jsonl, acked.json, delivered.jsonl live")
    parser.add_argument("--delay-ms", type=int, default=0, help="pause after each send and before each delivery")
    args = parser.parse_args()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    running = asyncio.create_task(run(args))
    await stop.wait()
    running.cancel()
    try:
        await running  # leaves the connection's `async with`: a clean close
    except asyncio.CancelledError:
        pass
    log("stopped (SIGTERM)")


if __name__ == "__main__":
    asyncio.run(main())
