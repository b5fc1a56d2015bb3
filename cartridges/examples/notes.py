"""notes: a small key-value notes API kept in the cartridge's own KV store.

GET /            -> all note names
GET /<name>      -> the note (404 if absent)
PUT /<name>      -> store the body as the note
DELETE /<name>   -> remove it
"""


def handle(request, kv, log):
    name = request["path"].strip("/")
    method = request["method"].upper()
    if not name:
        return {"body": {"notes": sorted(kv)}}
    if method == "GET":
        if name not in kv:
            return {"status": 404, "body": {"error": f"no note {name}"}}
        return {"body": {"name": name, "text": kv[name]}}
    if method == "PUT":
        kv[name] = request["body"]
        log(f"stored {name}")
        return {"status": 201, "body": {"stored": name}}
    if method == "DELETE":
        existed = kv.pop(name, None) is not None
        return {"status": 200 if existed else 404, "body": {"deleted": existed}}
    return {"status": 405, "body": {"error": f"{method} is not supported"}}
