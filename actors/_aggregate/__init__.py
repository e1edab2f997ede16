"""Helpers of the aggregator: folding statement events into logs and cutting batches."""
