"""Room authorization hooks used by the tests (referenced as tests.rooms.authorizers:NAME)."""

from __future__ import annotations

import asyncio

from gateway.signaling.authorize import RoomJoin

ALLOWED_ROOM = "11111111-1111-4111-8111-111111111111"


def only_allowed_room(join: RoomJoin) -> bool:
    return join.room_id == ALLOWED_ROOM


async def vip_param(join: RoomJoin) -> bool:
    await asyncio.sleep(0)
    return join.params.get("vip") == "yes"


def crashes_when_asked(join: RoomJoin) -> bool:
    """An app's hook with a bug: it raises when the join's params say `crash`."""
    if join.params.get("crash") == "yes":
        raise RuntimeError("authorizer bug")
    return True
