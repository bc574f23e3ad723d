"""Typed keys of the aiohttp application's shared state."""

from __future__ import annotations

from aiohttp import web

from gateway.config import Settings
from gateway.services import Services

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
