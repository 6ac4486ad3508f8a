#!/usr/bin/env python3
"""Validates recorded Neon API exchanges against Neon's OpenAPI document.

Usage: check_exchanges.py OPENAPI_DOCUMENT EXCHANGES_JSONL   (JSON or YAML)

Each line of EXCHANGES_JSONL is {method, path, query, request, status, response}, as the
neon-emulator's --record writes them: the request is what ferry's client sent, the response what
the emulator answered. Every request and every response must validate (openapi-core, an
independent implementation of OpenAPI 3.0). Prints one line per failure; exit 1 if any.
"""
import json
import sys
from urllib.parse import parse_qs

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

BASE = "https://console.neon.tech"
PREFIX = "/api/v2"


def main() -> int:
    spec_path, log_path = sys.argv[1], sys.argv[2]
    openapi = OpenAPI.from_file_path(spec_path)
    failures = 0
    checked = 0
    with open(log_path, encoding="utf-8") as log:
        for number, line in enumerate(log, 1):
            if not line.strip():
                continue
            ex = json.loads(line)
            args = {k: v[0] for k, v in parse_qs(ex["query"], keep_blank_values=True).items()}
            body = None if ex["request"] is None else json.dumps(ex["request"]).encode()
            request = MockRequest(
                BASE,
                ex["method"].lower(),
                PREFIX + ex["path"],
                args=args,
                data=body,
                headers={"Authorization": "Bearer x"},
                content_type="application/json" if body is not None else None,
            )
            what = f"line {number}: {ex['method']} {ex['path']}?{ex['query']} -> {ex['status']}"
            # A request the emulator refused as invalid is expected not to validate.
            if ex["status"] != 400 and ex["status"] != 401:
                try:
                    openapi.validate_request(request)
                except Exception as e:  # noqa: BLE001 - report every kind of failure
                    failures += 1
                    print(f"REQUEST  {what}: {type(e).__name__}: {describe(e)}")
            if ex["status"] == 204:
                response = MockResponse(b"", status_code=204, content_type=None)
            else:
                response = MockResponse(
                    json.dumps(ex["response"]).encode(),
                    status_code=ex["status"],
                    content_type="application/json",
                )
            try:
                openapi.validate_response(request, response)
            except Exception as e:  # noqa: BLE001
                failures += 1
                print(f"RESPONSE {what}: {type(e).__name__}: {describe(e)}")
            checked += 1
    print(f"checked {checked} exchanges, {failures} failures")
    return 1 if failures or checked == 0 else 0


def describe(e: Exception) -> str:
    parts = [str(e)]
    for inner in getattr(e, "schema_errors", []) or []:
        parts.append(f"{list(inner.absolute_path)}: {inner.message}")
    cause = e.__cause__
    while cause is not None:
        parts.append(str(cause))
        for inner in getattr(cause, "schema_errors", []) or []:
            parts.append(f"{list(inner.absolute_path)}: {inner.message}")
        cause = cause.__cause__
    return " | ".join(parts)[:2000]


if __name__ == "__main__":
    sys.exit(main())
