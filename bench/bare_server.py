"""A bare aiohttp + uvloop + msgspec WebSocket server doing the least of the Phoenix protocol the
benchmarks need: the baseline every gateway figure is printed beside.

Per frame event (V2 JSON arrays; the user id is the `token` connect param, as the gateway's
`--trust-token-as-user-id` takes it):

- `heartbeat`: an empty ok reply.
- `phx_join`: subscribes the socket to the topic and replies `{user_id}`.
- `phx_leave`: unsubscribes, replies, then sends `phx_close`, as Phoenix does.
- `offer`, `answer`, `ice-candidate`: stamped with `from` and pushed to the member named by
  `to` (every other member without `to`); no reply, no validation.
- `broadcast`, `new_msg`: the frame, encoded once, to every socket of the topic, and a reply.
- anything else: echoed back as the reply's response (what `echo:*` does on the gateway).

No presence, metrics, rate limits or validation: the ratio to it is what those cost.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

# The payload stays raw unless the event needs to look inside it: echo returns it untouched.
Frame = tuple[str | None, str | None, str, str, msgspec.Raw]
decode = msgspec.json.Decoder(Frame).decode
decode_payload = msgspec.json.Decoder(dict[str, Any]).decode
encode = msgspec.json.Encoder().encode
TEXT = WSMsgType.TEXT
SIGNALS = frozenset({"offer", "answer", "ice-candidate"})
EMPTY = msgspec.Raw(b"{}")

# topic -> user id -> (socket, the join_ref of that user's channel)
topics: dict[str, dict[str, tuple[web.WebSocketResponse, str | None]]] = {}


def reply(join_ref: str | None, ref: str | None, topic: str, response: Any) -> bytes:
    return encode([join_ref, ref, topic, "phx_reply", {"response": response, "status": "ok"}])


async def send(ws: web.WebSocketResponse, data: bytes) -> None:
    try:
        await ws.send_frame(data, TEXT)
    except (ConnectionError, RuntimeError):
        pass  # the peer left mid-write; the load generator closes sockets at the end of a run


async def handle(
    ws: web.WebSocketResponse, user: str, joined: set[str], frame: Frame
) -> None:  # one frame
    join_ref, ref, topic, event, raw = frame
    if event in SIGNALS:
        members = topics.get(topic)
        if members is None or topic not in joined:
            return
        payload = decode_payload(raw)
        payload["from"] = user
        target = payload.get("to")
        if isinstance(target, str):
            peer = members.get(target)
            if peer is not None:
                await send(peer[0], encode([peer[1], None, topic, event, payload]))
            return
        out = encode([None, None, topic, event, payload])
        for member, (sock, _) in list(members.items()):
            if member != user:
                await send(sock, out)
    elif event == "heartbeat":
        await send(ws, reply(None, ref, topic, EMPTY))
    elif event == "phx_join":
        topics.setdefault(topic, {})[user] = (ws, join_ref)
        joined.add(topic)
        await send(ws, reply(join_ref, ref, topic, {"user_id": user}))
    elif event == "phx_leave":
        leave(topic, user, ws)
        joined.discard(topic)
        await send(ws, reply(join_ref, ref, topic, EMPTY))
        await send(ws, encode([join_ref, join_ref, topic, "phx_close", EMPTY]))
    elif event in ("broadcast", "new_msg"):
        out = encode([None, None, topic, event, raw])
        for sock, _ in list(topics.get(topic, {}).values()):
            await send(sock, out)
        await send(ws, reply(join_ref, ref, topic, EMPTY))
    else:
        await send(ws, reply(join_ref, ref, topic, raw))


def leave(topic: str, user: str, ws: web.WebSocketResponse) -> None:
    members = topics.get(topic)
    if members is not None and members.get(user, (None,))[0] is ws:
        del members[user]
        if not members:
            del topics[topic]


async def socket_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=10_000_000)
    await ws.prepare(request)
    user = request.query.get("token") or str(uuid.uuid4())
    joined: set[str] = set()
    try:
        async for msg in ws:
            if msg.type is not TEXT:
                continue
            try:
                frame = decode(msg.data)
            except (msgspec.DecodeError, ValueError):
                await ws.close(code=1011)
                break
            await handle(ws, user, joined, frame)
    finally:
        for topic in joined:
            leave(topic, user, ws)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    app = web.Application()
    app.router.add_get("/socket/websocket", socket_handler)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
