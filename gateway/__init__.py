"""A Phoenix Channels compatible gateway with WebRTC signaling rooms."""

__version__ = "0.1.0"
