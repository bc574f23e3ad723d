"""The pure protocol core: wire values in, wire values and decisions out; no I/O."""
