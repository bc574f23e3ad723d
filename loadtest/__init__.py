"""Black-box load testing for any Phoenix Channels server: record, import, replay, report."""
