"""Plain data passed between the driver and the telemetry actors."""
