"""Reading OTLP/JSON with the official classes: `json_format` after OTLP's one spec'd change."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import json_format


def _ids_as_base64(value: Any) -> Any:
    """OTLP/JSON writes traceId and spanId in hex where proto3 JSON has base64 (spec'd change)."""
    if isinstance(value, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode()
            if k in ("traceId", "spanId") and isinstance(v, str)
            else _ids_as_base64(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_ids_as_base64(v) for v in value]
    return value


def parse_otlp_json(body: bytes, message: Any) -> Any:
    """Parse OTLP/JSON with `json_format`, after undoing OTLP's one difference from proto3 JSON."""
    return json_format.Parse(json.dumps(_ids_as_base64(json.loads(body))), message)
