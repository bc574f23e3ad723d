"""The value every token verifier returns: the verified data, or why the token was refused."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

Reason: TypeAlias = Literal["invalid", "expired", "missing"]


class Verified(msgspec.Struct, frozen=True):
    """A token whose signature and age checked out; `data` is what it carries."""

    data: Any


class Rejected(msgspec.Struct, frozen=True):
    """A refused token. `detail` is safe to log: it never contains the token or a secret."""

    reason: Reason
    detail: str = ""


VerifyResult: TypeAlias = Verified | Rejected
