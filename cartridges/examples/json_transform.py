"""json-transform: echoes a JSON body back with its string values upper-cased and a key count.

POST {"name": "ada", "langs": ["py"]} -> {"data": {"name": "ADA", "langs": ["PY"]}, "keys": 2}
"""
import json


def _upper(value):
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, list):
        return [_upper(v) for v in value]
    if isinstance(value, dict):
        return {k: _upper(v) for k, v in value.items()}
    return value


def handle(request, kv, log):
    try:
        data = json.loads(request["body"] or "{}")
    except ValueError as exc:
        return {"status": 400, "body": {"error": f"body is not JSON: {exc}"}}
    log(f"transforming {len(request['body'])} bytes")
    return {"status": 200, "body": {"data": _upper(data), "keys": len(data) if isinstance(data, dict) else 0}}
