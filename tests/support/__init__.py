"""Test helpers built on real parts: redis-server, gateway, phoenix.js, raw WebSockets, Chromium."""
