"""Signaling sessions and chat in PostgreSQL: migrations, the batch writer, the store, the reads."""
