"""Helpers of the exporter: transports, breaker, rate limit, backoff, classification, batches."""
