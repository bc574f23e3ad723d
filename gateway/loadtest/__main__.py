"""`python -m gateway.loadtest VERB …`: the loadtest command without the main gateway CLI."""

from __future__ import annotations

import sys

from gateway.loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main(["loadtest", *sys.argv[1:]]))
