"""A payload's fingerprint: equal for equal JSON, whatever the key order or spacing."""

import hashlib
import json
from typing import Any


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()
