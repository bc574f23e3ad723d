"""A bare aiohttp WebSocket server doing the least work a Phoenix-shaped echo needs: the baseline.

Modes, chosen by the event of each frame: `phx_join` subscribes the socket to the topic and
replies; `broadcast` sends the payload to every socket of the topic; anything else is echoed as
a phx_reply. JSON is parsed and written with the standard library, as a plain server would.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from aiohttp import WSMsgType, web

topics: dict[str, set[web.WebSocketResponse]] = defaultdict(set)


async def handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=10_000_000)
    await ws.prepare(request)
    joined: list[str] = []
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        jr, ref, topic, event, payload = json.loads(msg.data)[:5]
        if event == "phx_join":
            topics[topic].add(ws)
            joined.append(topic)
            await ws.send_str(
                json.dumps(
                    [jr, ref, topic, "phx_reply", {"response": {}, "status": "ok"}],
                    separators=(",", ":"),
                )
            )
        elif event == "broadcast":
            frame = json.dumps([None, None, topic, "broadcast", payload], separators=(",", ":"))
            for peer in list(topics[topic]):
                await peer.send_str(frame)
            await ws.send_str(
                json.dumps(
                    [jr, ref, topic, "phx_reply", {"response": {}, "status": "ok"}],
                    separators=(",", ":"),
                )
            )
        else:
            await ws.send_str(
                json.dumps(
                    [jr, ref, topic, "phx_reply", {"response": payload, "status": "ok"}],
                    separators=(",", ":"),
                )
            )
    for topic in joined:
        topics[topic].discard(ws)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    app = web.Application()
    app.router.add_get("/socket/websocket", handler)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
