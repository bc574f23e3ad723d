"""Helpers for testing channels without a network: `ChannelTest`, `Client`, `RecordingSink`."""

from gateway.testing.channels import ChannelTest, Client, RecordingSink, decode_frame

__all__ = ["ChannelTest", "Client", "RecordingSink", "decode_frame"]
