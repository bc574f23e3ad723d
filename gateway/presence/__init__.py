"""Presence: Phoenix.Presence's state and diffs, their coalescing, and the storage backends."""
