"""rerank: a cognitive cartridge implementing the ``memory.rerank`` interface.

It replaces the ranking step of recall with a transparent rule: items sharing more words with
the query come first, ties keep the incoming score order. Input (the request body):
{"query": str, "items": [{"id": int, "text": str, "score": float}]}; output: {"order": [ids]}.
"""
import json


def handle(request, kv, log):
    payload = json.loads(request["body"])
    words = set(payload["query"].lower().split())
    items = payload["items"]
    ranked = sorted(items, key=lambda it: (-len(words & set(it["text"].lower().split())), -it["score"]))
    return {"body": {"order": [it["id"] for it in ranked]}}
