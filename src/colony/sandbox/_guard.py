"""The in-interpreter guard run before any untrusted Python, in either tier.

It is defence in depth, not the boundary: the boundary is WASM (no capabilities granted) or
bubblewrap (no network, read-only root). What the guard adds is a precise *report*: an audit hook
turns an attempt to open a socket, start a process, load native code or walk the interpreter's
internals into an immediate exit with a marker, so the result says ``denied`` and names the
operation instead of showing an ordinary crash.

Audit hooks cannot be removed from Python code; the one way around them (ctypes) is itself denied.
A denied event exits through ``os._exit`` so a ``try/except`` in the program cannot swallow it.
"""

from __future__ import annotations

__all__ = ["DENIED_EXIT", "DENIED_MARKER", "GUARD_SOURCE"]

#: Exit status of a run the guard stopped.
DENIED_EXIT = 125
#: Written to stderr (fd 2) just before that exit, followed by the event name.
DENIED_MARKER = "colony-sandbox: denied: "

# Kept as source text: it is prepended to programs that run in another interpreter (a WASI
# CPython 3.12 or a native one), so it must only use the standard library.
GUARD_SOURCE = r'''
def __colony_guard(strict_frames):
    import os as _os, sys as _sys
    # Imported now, before the hook exists: they need frame access while they initialise.
    for _name in () if not strict_frames else ("typing", "collections", "functools", "itertools", "math", "re", "string", "heapq",
                  "bisect", "json", "dataclasses", "enum", "fractions", "decimal", "statistics", "hashlib",
                  "random", "copy", "operator"):
        try:
            __import__(_name)
        except ImportError:
            pass
    _exit, _write = _os._exit, _os.write
    _prefixes = ("socket.", "subprocess.", "os.exec", "os.fork", "os.posix_spawn", "os.spawn", "os.system",
                 "os.kill", "os.killpg", "os.forkpty", "pty.", "ctypes.", "gc.get_", "sys.settrace",
                 "sys.setprofile", "sys._current_frames", "sys.remote_exec", "cpython.run_", "_posixsubprocess.",
                 "winreg.", "webbrowser.", "urllib.Request", "ftplib.", "smtplib.", "telnetlib.", "http.client.")
    _native = {"ctypes", "_ctypes", "cffi", "_cffi_backend", "mmap", "_posixsubprocess", "resource"}
    _frames = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}

    def _deny(event):
        _write(2, ("\n" + __MARKER__ + event + "\n").encode())
        _exit(__EXIT__)

    def _hook(event, args):
        if event.startswith(_prefixes):
            _deny(event)
        elif event == "import" and args and str(args[0]).split(".")[0] in _native:
            _deny("import " + str(args[0]))
        elif strict_frames and event == "sys._getframe":
            _deny(event)
        elif strict_frames and event == "object.__getattr__" and len(args) > 1 and args[1] in _frames:
            _deny("frame access ." + str(args[1]))
    _sys.addaudithook(_hook)
'''.replace("__MARKER__", repr(DENIED_MARKER)).replace("__EXIT__", str(DENIED_EXIT))
