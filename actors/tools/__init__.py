"""Tools around the library: the local endpoint, the demo and the `driver-telemetry` command."""
