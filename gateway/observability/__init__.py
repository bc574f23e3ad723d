"""Metrics, structured logging and event-loop lag monitoring for the gateway.

Nothing is imported here on purpose: `multiproc.prepare_multiprocess_dir` must be able to run
before anything imports `prometheus_client`.
"""
