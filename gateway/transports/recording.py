"""Records sampled sockets as load-test recordings (`--record-dir`): frames both ways."""

from __future__ import annotations

from gateway.protocol.messages import Frame
from gateway.recording import SessionRecorder
from gateway.runtime.sink import Sink


class RecordingSink:
    """A sink that writes every outbound frame to a recording before passing it on."""

    __slots__ = ("_inner", "_session", "transport")

    def __init__(self, inner: Sink, session: SessionRecorder) -> None:
        self._inner = inner
        self._session = session
        self.transport = inner.transport

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def send(self, frame: Frame) -> None:
        if not self._inner.closed:
            self._session.frame("out", frame.data, frame.text)
        self._inner.send(frame)

    def close(self, code: int, reason: str = "") -> None:
        self._inner.close(code, reason)
