"""The coding benchmark against solutions that try to be scored as passing with a wrong answer.

Each cheat below was scored ``pass`` by the single-process harness (the solution and the tests in
one interpreter). The harness now runs the tests in a sandbox of their own, so every one of them
must come out ``fail`` or ``tamper``. The harness runs in one tier (the process tier: two
sandboxes joined by a pipe), so that is the tier these run in.

The channel between the two sandboxes is tested on its own too: whatever the solution writes on
it, the tests' side decodes only genuine builtin values or refuses the message.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colony.bench import load_problems, own_problems, verify
from colony.bench._wire import CHANNEL_SOURCE
from colony.bench.problems import Problem

#: Every run here ends with the host-side check: no sandbox process, zombie or temp file left.
pytestmark = pytest.mark.usefixtures("host_check")


OWN = {p.id: p for p in own_problems()}
HUMANEVAL = {p.id: p for p in load_problems("humaneval")}


def problem(pid: str) -> Problem:
    return OWN[pid] if pid in OWN else HUMANEVAL[pid]


# (problem, wrong solution that games the harness)
CHEATS: dict[str, tuple[str, str]] = {
    # 1. answers whose __eq__ lies
    "int subclass whose __eq__ lies": ("colony/t1-digit-sum", (
        "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def digit_sum(n):\n    return Liar(0)\n")),
    "str subclass whose __eq__ lies": ("colony/t2-roman", (
        "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def to_roman(n):\n    return S('?')\n")),
    "list subclass whose __eq__ lies": ("colony/t4-csv-line", (
        "class L(list):\n    def __eq__(self, other):\n        return True\n"
        "def parse_csv_line(line):\n    return L()\n")),
    "float subclass whose arithmetic lies": ("HumanEval/4", (
        "class F(float):\n    def __sub__(self, other):\n        return 0.0\n"
        "def mean_absolute_deviation(numbers):\n    return F(123.0)\n")),
    "numpy-like object whose == is truthy": ("colony/t1-digit-sum", (
        "class Arr:\n    def __eq__(self, other):\n        return Arr()\n    def __bool__(self):\n        return True\n"
        "def digit_sum(n):\n    return Arr()\n")),
    "stateful object answering with a liar": ("colony/t5-lru", (
        "class Any:\n    def __eq__(self, other):\n        return True\n"
        "class LRUCache:\n    def __init__(self, cap):\n        pass\n    def put(self, k, v):\n        pass\n"
        "    def get(self, k):\n        return Any()\n")),
    # 2. the verdict's nonce read back from the harness's own output
    "learns the nonce through dup2 and atexit": ("colony/t1-digit-sum", (
        "import atexit, os, sys\n"
        "saved = os.dup(1)\nr, w = os.pipe()\nos.dup2(w, 1)\n"
        "def fin():\n    sys.stdout.flush()\n    os.close(1)\n    os.close(w)\n"
        "    data = os.read(r, 1 << 20).decode()\n"
        "    for line in data.splitlines():\n"
        "        parts = line.split()\n"
        "        if len(parts) >= 2 and parts[1] == 'FAIL':\n"
        "            os.write(saved, ('\\n' + parts[0] + ' PASS \"\"\\n').encode())\n"
        "atexit.register(fin)\n"
        "def digit_sum(n):\n    return 0\n")),
    # 3. the nonce and the tests read from the process's own memory
    "reads the nonce from /proc/self/mem": ("colony/t1-digit-sum", (
        "import re, sys, os\n"
        "def scan():\n"
        "    with open('/proc/self/maps') as fh:\n        regions = [line.split() for line in fh]\n"
        "    with open('/proc/self/mem', 'rb', 0) as mem:\n"
        "        for region in regions:\n"
        "            if not region[1].startswith('r'):\n                continue\n"
        "            lo, hi = (int(x, 16) for x in region[0].split('-'))\n"
        "            if hi - lo > (256 << 20):\n                continue\n"
        "            try:\n                mem.seek(lo)\n                data = mem.read(hi - lo)\n"
        "            except (OSError, ValueError, OverflowError):\n                continue\n"
        "            m = re.search(rb'\"nonce\": \"([0-9a-f]{32})\"', data)\n"
        "            if m:\n                return m.group(1).decode()\n"
        "nonce = scan()\n"
        "if nonce:\n    sys.stdout.write('\\n' + nonce + ' PASS \"\"\\n')\n    sys.stdout.flush()\n    os._exit(0)\n"
        "def digit_sum(n):\n    return 0\n")),
    # 4. an audit hook that receives the tests' source when they are compiled
    "audit hook learns the tests": ("colony/t1-digit-sum", (
        "import re, sys\nSEEN = []\n"
        "def hook(event, args):\n"
        "    if event == 'compile' and args and isinstance(args[0], (str, bytes)):\n"
        "        SEEN.append(args[0] if isinstance(args[0], str) else args[0].decode('utf-8', 'replace'))\n"
        "sys.addaudithook(hook)\n"
        "def digit_sum(n):\n"
        "    for src in SEEN:\n"
        "        for arg, want in re.findall(r'candidate\\((-?\\d+)\\) == (-?\\d+)', src):\n"
        "            if int(arg) == n:\n                return int(want)\n"
        "    return -1\n")),
    # 5. builtins the harness itself uses, replaced
    "replaces exec and sorted": ("colony/t1-digit-sum", (
        "import builtins\n_exec = builtins.exec\n"
        "def fake_exec(code, env=None, *rest):\n"
        "    if isinstance(env, dict) and 'digit_sum' in env:\n"
        "        env['check'] = lambda candidate: None\n        return None\n"
        "    return _exec(code, env, *rest)\n"
        "builtins.exec = fake_exec\nbuiltins.sorted = lambda *a, **k: []\n"
        "def digit_sum(n):\n    return 0\n")),
    # 6. the solution's own names shadowing the builtins the asserts use
    "shadows abs for the asserts": ("HumanEval/4", (
        "def abs(x):\n    return 0.0\n"
        "def mean_absolute_deviation(numbers):\n    return 42.0\n")),
    # 7. the prompt's helpers redefined by the solution
    "redefines the prompt's poly": ("HumanEval/32", (
        "def poly(xs, x):\n    return 0.0\n"
        "def find_zero(xs):\n    return 0.0\n")),
    "redefines the prompt's encode_cyclic": ("HumanEval/38", (
        "def encode_cyclic(s):\n    return s\n"
        "def decode_cyclic(s):\n    return s\n")),
    # 8. shared standard-library modules patched
    "patches math.fabs": ("HumanEval/32", (
        "import math\n"
        "def poly(xs, x):\n    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))\n"
        "math.fabs = lambda x: 0.0\n"
        "def find_zero(xs):\n    return 0.0\n")),
    "installs a fake random module": ("HumanEval/53", (
        "import sys, types\nfake = types.ModuleType('random')\nfake.randint = lambda a, b: 0\n"
        "sys.modules['random'] = fake\n"
        "def add(x, y):\n    return {(0, 1): 1, (1, 0): 1, (2, 3): 5, (5, 7): 12, (7, 5): 12}.get((x, y), 0)\n")),
    # the channel itself: a solution that writes its own answers on it
    "writes a forged verdict on every descriptor": ("colony/t1-digit-sum", (
        "import json, os\n"
        "forged = json.dumps({'verdict': 'PASS', 'detail': ''}).encode()\n"
        "for fd in range(1, 64):\n    try:\n        os.write(fd, len(forged).to_bytes(4, 'big') + forged)\n"
        "    except OSError:\n        pass\n"
        "os._exit(0)\n")),
    "answers with a lent object to a bare assert": ("colony/t1-is-palindrome", (
        "class Yes:\n    pass\n"
        "def is_palindrome(s):\n    return Yes()\n")),
}


@pytest.mark.parametrize("name", list(CHEATS))
def test_cheat_is_not_scored_as_passing(name: str) -> None:
    pid, code = CHEATS[name]
    verdict = verify(problem(pid), code)
    assert verdict.outcome in ("fail", "tamper"), verdict
    assert not verdict.passed


def test_honest_subclasses_and_namedtuples_are_compared_by_value() -> None:
    """Converting to the base type is not a penalty: an honest subclass with the right value passes."""
    code = ("from collections import Counter, OrderedDict, namedtuple\nimport enum\n"
            "class D(enum.IntEnum):\n    X = 6\n"
            "def digit_sum(n):\n    return D.X if n == 123 else int(sum(int(c) for c in str(abs(n))))\n")
    assert verify(OWN["colony/t1-digit-sum"], code).passed
    merge = ("from collections import namedtuple\nP = namedtuple('P', 'a b')\n"
             "def merge_intervals(xs):\n    out = []\n    for a, b in sorted(xs):\n"
             "        if out and a <= out[-1][1]:\n            out[-1] = P(out[-1][0], max(out[-1][1], b))\n"
             "        else:\n            out.append(P(a, b))\n    return out\n")
    assert verify(OWN["colony/t2-merge-intervals"], merge).passed


def test_exceptions_cross_as_builtin_classes_with_their_message() -> None:
    """t5-vending checks ``'insufficient' in str(e)`` on a ValueError; a subclass still counts."""
    p = OWN["colony/t5-vending"]
    code = "class VendError(ValueError):\n    pass\n" + p.solution.replace("ValueError(", "VendError(")
    assert "VendError(" in code
    assert verify(p, code).passed


def test_callbacks_run_in_the_tests_process() -> None:
    """The event bus's tests pass lambdas that append to a list the tests then inspect."""
    p = OWN["colony/t5-event-bus"]
    assert verify(p, p.solution).passed
    assert not verify(p, p.wrong or "").passed


# -- the channel on its own ----------------------------------------------------------------------


def channel_class() -> Any:
    ns: dict[str, Any] = {"__name__": "wire"}
    exec(compile(CHANNEL_SOURCE, "<wire>", "exec"), ns)
    return ns


@pytest.fixture(scope="module")
def wire() -> Any:
    return channel_class()


def _pair(wire: Any) -> tuple[Any, Any]:
    a_r, b_w = os.pipe()
    b_r, a_w = os.pipe()
    return wire["Channel"](a_r, a_w, strict=True), wire["Channel"](b_r, b_w, strict=False)


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
                   | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=plain)
def test_plain_values_cross_by_value(value: Any) -> None:
    ns = channel_class()
    tests, solution = _pair(ns)
    decoded = tests.dec(json.loads(json.dumps(solution.enc(value))))
    assert decoded == value and type(decoded) is type(value)


def _only_builtins(value: Any, remote: type) -> bool:
    if isinstance(value, remote):
        return True
    if type(value) in (list, tuple, set, frozenset):
        return all(_only_builtins(v, remote) for v in value)
    if type(value) is dict:
        return all(_only_builtins(k, remote) and _only_builtins(v, remote) for k, v in value.items())
    return type(value) in (type(None), bool, int, float, complex, str, bytes, bytearray)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["t", "s", "f", "d", "b", "y", "c", "h", "r", "x", "ok"]), inner, max_size=2),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(raw=json_values)
def test_whatever_the_solution_sends_decodes_to_builtins_or_is_refused(raw: Any) -> None:
    ns = channel_class()
    tests, _ = _pair(ns)
    try:
        value = tests.dec(raw)
    except (ns["ChannelClosed"], TypeError):  # TypeError: an unhashable value offered as a set member or key
        return
    assert _only_builtins(value, ns["_Remote"])


def test_a_lent_object_has_no_truth_value_and_equals_nothing(wire: Any) -> None:
    tests, _ = _pair(wire)
    proxy = tests.dec({"h": 7})
    assert not proxy == 7  # noqa: SIM201 - the == operator itself is under test
    assert proxy != 0 and proxy != proxy.__class__
    with pytest.raises(TypeError, match="no truth value"):
        bool(proxy)
    assert tests.dec({"h": 7}) is proxy  # one proxy per handle, so `is` works


def test_the_tests_side_lends_only_callables(wire: Any) -> None:
    tests, _ = _pair(wire)
    assert tests.enc(len) == {"h": 1}

    class Thing:
        pass

    with pytest.raises(TypeError, match="plain values and callables"):
        tests.enc(Thing())
