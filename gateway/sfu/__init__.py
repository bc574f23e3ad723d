"""The SFU bridge: a room in `sfu` media mode has its media routed by a Janus VideoRoom."""
