"""The room's domain: payload validation, grace queue, signaling sessions and their stores."""
