"""Tests for gateway.observability."""
