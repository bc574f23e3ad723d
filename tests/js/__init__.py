"""Tests that drive the official phoenix npm client under Node."""
