"""The channel between the solution's process and the tests' process, and the two programs on it.

A verdict can only be trusted if the solution cannot reach it, so the harness runs the solution
and the hidden tests in two separate sandboxes (`colony.bench.harness`). The tests call the
solution's entry point through a proxy; every call crosses a pair of pipes as a request, and its
result comes back as *data*:

- values of the plain types (None, bool, int, float, complex, str, bytes, bytearray, list, tuple,
  dict, set, frozenset) are copied by value; subclasses are converted to their base type with the
  base type's own methods, so a subclass's ``__eq__`` never reaches the tests;
- anything else (an instance of the solution's class, a bound method, a callback the tests pass
  in) stays where it lives and is lent as a *handle*: the other side can call it or read one of
  its attributes, and nothing else — a handle is not equal to any value and has no truth value
  in the tests' process, so an object cannot pass an assertion by lying about itself;
- an exception crosses as the nearest builtin exception class and its message.

The receiving side decodes strictly: JSON gives only JSON types, and every container must carry
one known tag, so whatever the solution writes, the tests see only genuine builtin values built by
their own interpreter. The worst a hostile solution can do to the channel is break it, which
fails the run.

Messages are a 4-byte big-endian length and a JSON body, at most `MAX_MESSAGE` bytes. This module
holds the programs as source text because they run in other interpreters (``python -I -S`` in the
sandbox): standard library only.
"""

from __future__ import annotations

__all__ = ["AGENT_SOURCE", "CHANNEL_SOURCE", "MAX_MESSAGE", "TESTER_SOURCE"]

MAX_MESSAGE = 64 << 20

CHANNEL_SOURCE = r'''
import builtins as _builtins, json as _json, os as _os, sys as _sys


class ChannelClosed(Exception):
    """The other side closed the channel, died, or broke the protocol."""


class _Remote:
    __slots__ = ("_c", "_h")

    def __init__(self, channel, handle):
        object.__setattr__(self, "_c", channel)
        object.__setattr__(self, "_h", handle)

    def __call__(self, *args, **kwargs):
        c = object.__getattribute__(self, "_c")
        return c.request({"q": "call", "h": object.__getattribute__(self, "_h"), "a": [c.enc(a) for a in args],
                          "k": [[str(k), c.enc(v)] for k, v in kwargs.items()]})

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        c = object.__getattribute__(self, "_c")
        return c.request({"q": "get", "h": object.__getattribute__(self, "_h"), "n": name})

    def __setattr__(self, name, value):
        raise TypeError("objects of the other process are read through calls, not assigned to")

    def __bool__(self):
        if object.__getattribute__(self, "_c").strict:
            raise TypeError("an object of the solution has no truth value here; the answer must be a plain value")
        return True

    def __repr__(self):
        return "<remote object #%d>" % object.__getattribute__(self, "_h")


class Channel:
    """One end of the pipe pair. ``strict`` is the tests' side: it lends only callables."""

    MAX = __MAX__

    def __init__(self, rfd, wfd, strict):
        self.rfd, self.wfd, self.strict = rfd, wfd, strict
        self.mine, self.ids, self.peer = {}, {}, {}

    # -- framing ---------------------------------------------------------------------------
    def send(self, message):
        data = _json.dumps(message, separators=(",", ":")).encode()
        if len(data) > self.MAX:
            raise ChannelClosed("a message over %d bytes" % self.MAX)
        data = len(data).to_bytes(4, "big") + data
        while data:
            try:
                n = _os.write(self.wfd, data)
            except OSError as exc:
                raise ChannelClosed("the other side is gone (%s)" % exc) from None
            data = data[n:]

    def _read(self, n):
        chunks, left = [], n
        while left:
            try:
                chunk = _os.read(self.rfd, min(left, 1 << 20))
            except OSError as exc:
                raise ChannelClosed("the other side is gone (%s)" % exc) from None
            if not chunk:
                raise ChannelClosed("the other side closed the channel")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def recv(self):
        size = int.from_bytes(self._read(4), "big")
        if size > self.MAX:
            raise ChannelClosed("a message over %d bytes" % self.MAX)
        try:
            message = _json.loads(self._read(size))
        except (ValueError, RecursionError) as exc:
            raise ChannelClosed("not a message: %s" % exc) from None
        if type(message) is not dict:
            raise ChannelClosed("not a message")
        return message

    # -- values ----------------------------------------------------------------------------
    def enc(self, v):
        if v is None or v is True or v is False:
            return v
        if isinstance(v, _Remote):
            return {"r": object.__getattribute__(v, "_h")}
        if isinstance(v, int):
            return int.__int__(v)
        if isinstance(v, float):
            return float.__float__(v)
        if isinstance(v, str):
            return str.__str__(v)
        if isinstance(v, bytes):
            return {"b": bytes.hex(v)}
        if isinstance(v, bytearray):
            return {"y": bytearray.hex(v)}
        if isinstance(v, complex):
            return {"c": [complex.__getattribute__(v, "real"), complex.__getattribute__(v, "imag")]}
        if isinstance(v, list):
            return [self.enc(x) for x in list.__iter__(v)]
        if isinstance(v, tuple):
            return {"t": [self.enc(x) for x in tuple.__iter__(v)]}
        if isinstance(v, dict):
            return {"d": [[self.enc(k), self.enc(x)] for k, x in dict.items(v)]}
        if isinstance(v, frozenset):
            return {"f": [self.enc(x) for x in frozenset.__iter__(v)]}
        if isinstance(v, set):
            return {"s": [self.enc(x) for x in set.__iter__(v)]}
        if self.strict and not callable(v):
            raise TypeError("the tests can lend the solution only plain values and callables, not %s"
                            % type(v).__name__)
        handle = self.ids.get(id(v))
        if handle is None:
            handle = len(self.mine) + 1
            self.mine[handle], self.ids[id(v)] = v, handle
        return {"h": handle}

    def dec(self, x):
        t = type(x)
        if x is None or t is bool or t is int or t is float or t is str:
            return x
        if t is list:
            return [self.dec(i) for i in x]
        if t is not dict or len(x) != 1:
            raise ChannelClosed("a value of an unknown shape")
        (tag, body), = x.items()
        if tag in ("t", "s", "f", "d") and type(body) is not list:
            raise ChannelClosed("a malformed %s" % tag)
        if tag == "t":
            return tuple(self.dec(i) for i in body)
        if tag == "s":
            return set(self.dec(i) for i in body)
        if tag == "f":
            return frozenset(self.dec(i) for i in body)
        if tag == "d":
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise ChannelClosed("a malformed dict")
                out[self.dec(pair[0])] = self.dec(pair[1])
            return out
        if tag in ("b", "y") and type(body) is str:
            try:
                return bytes.fromhex(body) if tag == "b" else bytearray.fromhex(body)
            except ValueError:
                raise ChannelClosed("malformed bytes") from None
        if tag == "c" and type(body) is list and len(body) == 2 and all(type(p) in (int, float) for p in body):
            return complex(body[0], body[1])
        if tag == "h" and type(body) is int:
            proxy = self.peer.get(body)
            if proxy is None:
                proxy = self.peer[body] = _Remote(self, body)
            return proxy
        if tag == "r" and type(body) is int and body in self.mine:
            return self.mine[body]
        raise ChannelClosed("a value of an unknown shape")

    # -- calls -----------------------------------------------------------------------------
    def request(self, message):
        """Send a request and serve the other side's nested requests until its answer arrives."""
        self.send(message)
        while True:
            reply = self.recv()
            if "q" in reply:
                self.serve(reply)
            elif "ok" in reply:
                return self.dec(reply["ok"])
            elif "err" in reply and type(reply["err"]) is list and len(reply["err"]) == 2:
                raise self.exception(*reply["err"])
            else:
                raise ChannelClosed("a reply of an unknown shape")

    def serve(self, message):
        try:
            target = self.mine.get(message.get("h")) if type(message.get("h")) is int else None
            if target is None:
                raise LookupError("no such object")
            if message["q"] == "call":
                args = [self.dec(a) for a in message["a"]]
                kwargs = {str(k): self.dec(v) for k, v in message["k"]}
                result = target(*args, **kwargs)
            elif message["q"] == "get" and not self.strict and type(message.get("n")) is str:
                result = getattr(target, message["n"])
            else:
                raise TypeError("the tests lend only callables")
            reply = {"ok": self.enc(result)}
        except ChannelClosed:
            raise
        except BaseException as exc:
            reply = {"err": [self.builtin_name(exc), self.message(exc)]}
        self.send(reply)

    @staticmethod
    def builtin_name(exc):
        for cls in type(exc).__mro__:
            if getattr(_builtins, cls.__name__, None) is cls:
                return cls.__name__
        return "Exception"

    @staticmethod
    def message(exc):
        try:
            text = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
        except BaseException:
            text = "(unprintable)"
        return text[:2000] if type(text) is str else "(unprintable)"

    @staticmethod
    def exception(name, text):
        cls = getattr(_builtins, name, None) if type(name) is str else None
        text = text if type(text) is str else ""
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(text)
            except BaseException:
                pass
        return RuntimeError("%s: %s" % (name, text))
'''.replace("__MAX__", str(MAX_MESSAGE))

# The solution's side: run the solution, lend its entry point as handle 0, answer until EOF.
AGENT_SOURCE = CHANNEL_SOURCE + r'''
def __colony_agent(source, entry):
    _sys.set_int_max_str_digits(0)  # answers may be big integers
    _sys.setrecursionlimit(10000)  # and deeply nested
    channel = Channel(3, 4, strict=False)
    ns = {"__name__": "solution"}
    try:
        exec(compile(source, "<solution>", "exec"), ns)
        if entry not in ns:
            raise NameError("the solution does not define " + entry)
        channel.mine[0] = ns[entry]
        channel.ids[id(ns[entry])] = 0
        ready = {"ok": True}
    except BaseException as exc:
        ready = {"err": [Channel.builtin_name(exc), Channel.message(exc)]}
    try:
        channel.send(ready)
        while "ok" in ready:
            channel.serve(channel.recv())
    except ChannelClosed:
        pass
    _sys.stdout.flush()
    _os._exit(0)
__colony_agent(SOLUTION, ENTRY)
'''

# The tests' side: a fresh interpreter, the problem's own helpers, the hidden tests, one verdict.
TESTER_SOURCE = CHANNEL_SOURCE + r'''
def __colony_tester():
    _sys.set_int_max_str_digits(0)
    _sys.setrecursionlimit(10000)
    payload = _json.loads(_sys.stdin.read())
    channel = Channel(4, 3, strict=True)

    def verdict(word, detail=""):
        _os.write(5, _json.dumps({"verdict": word, "detail": detail[:500]}).encode())
        _os._exit(0)

    try:
        ready = channel.recv()
        if "ok" not in ready:
            err = ready.get("err") if type(ready.get("err")) is list and len(ready["err"]) == 2 else ["Error", ""]
            verdict("FAIL", "%s: %s" % (err[0], err[1]))
        ns = {"__name__": "__main__"}
        exec(compile(payload["prompt"], "<prompt>", "exec"), ns)
        candidate = channel.dec({"h": 0})  # the solution's entry point, lent as handle 0
        ns[payload["entry_point"]] = candidate  # replaces the prompt's stub (some tests name it)
        exec(compile(payload["tests"], "<tests>", "exec"), ns)
        ns["check"](candidate)
    except ChannelClosed as exc:
        verdict("FAIL", "the solution stopped answering: %s" % exc)
    except BaseException as exc:
        verdict("FAIL", "%s: %s" % (type(exc).__name__, Channel.message(exc)))
    verdict("PASS")
__colony_tester()
'''
