"""Perception: a rule-based pass over each user input before the model sees it.

Small models do better when the request arrives pre-digested: what kind of task it is, which
things it names, which limits it sets and which words signal danger. `perceive` extracts that
with precompiled regular expressions and word sets only -- no model call, no I/O -- so it can run
on every turn. `Perception.summary` goes into the system prompt, `ambiguity` lets the loop ask a
clarifying question or act more conservatively, and `risk_indicators` let governance see danger
words before any tool is called.

These are heuristics, not understanding. Negation is not parsed ("don't delete prod" still
reports ``delete`` and ``production``: risk signals are meant to over-report), entities come from
patterns, not NER, and the ambiguity weights below are hand-set, not calibrated. Measure before
trusting any of it: injecting such summaries can also *hurt* a model by inviting it to act on
context it did not need.

Speed comes from three habits: every pattern is compiled at import and starts with a literal or a
character class (so the regex engine can skip ahead), keyword families are checked against one
set of lower-cased words before any regex runs, and only the first `HEAD_CHARS` and last
`TAIL_CHARS` characters are analysed, so a 1 MB paste costs about what a 3 KB one does.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from colony.tools.redact import redact_text

__all__ = [
    "HEAD_CHARS",
    "MAX_ITEM_CHARS",
    "MAX_LIST_ITEMS",
    "TAIL_CHARS",
    "Perception",
    "TaskType",
    "perceive",
]

TaskType = Literal["question", "action", "planning", "research", "meta", "unclear"]

# --- Work caps: a request usually opens or closes a long paste, so both ends are read --------
HEAD_CHARS = 2048  # characters analysed from the start of the input
TAIL_CHARS = 512  # ...and from the end, when the input is longer than both together
MAX_LIST_ITEMS = 20  # most entities, constraints or risk indicators kept
MAX_ITEM_CHARS = 200  # longest entity or constraint kept; longer ones are cut with an ellipsis
_SUMMARY_ITEMS = 8
_SUMMARY_LINE_CHARS = 240

# --- Ambiguity: the sum of these, from AMBIGUITY_BASE, clamped to [0, 1]. Hand-set, not fitted.
AMBIGUITY_BASE = 0.3  # a plain request with no signal either way is mildly ambiguous
VAGUE_WORD_WEIGHT = 0.15  # per vague word ("something", "maybe", "stuff", "kind of"), up to 4
ENTITY_WEIGHT = -0.1  # per entity, up to 3: named things make a request concrete
CONSTRAINT_WEIGHT = -0.05  # per constraint, up to 2: stated limits narrow the request
SHORT_INPUT_CHARS, SHORT_INPUT_PENALTY = 20, 0.25  # fewer stripped characters: too little to act on
DETAILED_INPUT_CHARS, DETAILED_INPUT_BONUS = 200, -0.15  # more: the user took time to explain
MULTI_QUESTION_WEIGHT = 0.1  # per question beyond the first, up to 3: several questions dilute intent
UNCLEAR_TASK_PENALTY = 0.15  # no task type recognised
EMPTY_INPUT_AMBIGUITY = 1.0  # an empty or whitespace-only input says nothing at all
_COUNT_CAPS = {"vague": 4, "entities": 3, "constraints": 2, "extra_questions": 3}


class Perception(BaseModel):
    """What the rules saw in one user input. Frozen: it describes a message that happened."""

    model_config = ConfigDict(frozen=True)

    task_type: TaskType
    entities: list[str]
    constraints: list[str]
    ambiguity: float
    risk_indicators: list[str]
    question_count: int
    likely_needs_tools: bool

    def summary(self) -> str:
        """A one-to-three-line block for the system prompt.

        Terse on purpose: every extra line competes with the user's own words for a small model's
        attention. Secret-shaped substrings are masked because a quoted entity can echo a pasted
        token into the system prompt, which may be logged on its own.
        """
        head = f"[Perception] task={self.task_type} ambiguity={self.ambiguity:.2f}"
        head += f" tools={'yes' if self.likely_needs_tools else 'no'}"
        if self.question_count:
            head += f" questions={self.question_count}"
        if self.risk_indicators:
            head += " risk=" + ",".join(self.risk_indicators)
        lines = [head]
        if self.entities:
            lines.append("entities=" + " | ".join(self.entities[:_SUMMARY_ITEMS]))
        if self.constraints:
            lines.append("constraints=" + " | ".join(self.constraints[:_SUMMARY_ITEMS]))
        # The head line holds no user text, so only the other lines pay for redaction.
        tail = [redact_text(_cut(line, _SUMMARY_LINE_CHARS)) for line in lines[1:]]
        return "\n".join([_cut(lines[0], _SUMMARY_LINE_CHARS), *tail])


def _words(text: str) -> frozenset[str]:
    """A word set written as one string, so long vocabularies stay readable."""
    return frozenset(text.split())


_WORD = re.compile(r"[a-z0-9]+")  # run on lower-cased text; "don't" -> "don", "t"

# --- Task type ------------------------------------------------------------------------------
_LEAD = re.compile(
    r"[\W_]*(?:(?:please|pls|kindly|ok(?:ay)?|hey|hi|so|now|then|also|just|first|next|go ahead and|"
    r"can you|could you|would you|will you|can u|could u|i (?:need|want|would like|'d like) you to|"
    r"let'?s|let us)\b[\s,!.:]*)*([a-z]+(?:\s+(?:out|into)\b)?)"
)
_ACTION_VERBS = _words(
    "run execute create make build fix write delete remove deploy add update install uninstall rename "
    "move copy edit change modify refactor implement generate set configure start stop restart kill "
    "push pull commit merge rebase clone open close send upload download apply revert drop truncate "
    "format reboot shutdown test lint migrate upgrade downgrade patch replace insert append save clean "
    "clear reset enable disable schedule fetch convert compile bump publish release rollback sort pin "
    "print list show rm mkdir chmod chown sudo git pip npm docker kubectl curl wget cd ls cat "
    "tag import export backup restore wipe erase purge destroy archive check verify validate use call "
    "read grep find search get summarize summarise translate rewrite draft send"
)
_ASK_VERBS = _words("explain describe tell define clarify")
_PLANNING_VERBS = _words("plan outline strategize prioritize brainstorm") | {"map out"}
_RESEARCH_VERBS = _words(
    "investigate explore analyze analyse compare research study evaluate assess examine survey "
    "audit diagnose benchmark profile"
) | {"find out", "look into", "dig into"}
_META = re.compile(
    r"\b(?:your (?:memory|memories|status|state|capabilit(?:y|ies)|limitations?|tools|config(?:uration)?|"
    r"context|own|name|purpose|instructions|settings|knowledge|health|mood|beliefs?)|"
    r"(?:about|describe|introduce|explain|reflect on|assess|evaluate|diagnose) yourself|"
    r"what (?:can|do) you (?:do|know|remember)|who are you|what are you|how do you work|"
    r"are you (?:ok|okay|alive|there))\b"
)
_QUESTION_START = re.compile(
    r"[\W_]*(?:(?:what|why|how|when|where|who|whom|whose|which)\b|"
    r"(?:is|are|was|were|can|could|would|should|will|does|do|did|has|have|may|might|shall)\s+"
    r"(?:you|i|we|it|this|that|these|those|there|the|a|an|my|your|our|he|she|they|any|anyone)\b)"
)
_PLANNING_QUESTION = re.compile(
    r"\b(?:how (?:should|would|could|do) (?:we|i)|what(?:'s| is| are)? (?:the |a |our )?(?:best )?"
    r"(?:plan|strategy|approach|roadmap|next steps|steps)|what steps)\b"
)
_PLANNING_TRIGGERS = _words(
    "plan plans planning roadmap strategy strategies step steps milestone milestones phases break should"
)
_PLANNING = re.compile(
    r"\b(?:plan(?:s|ning)?|roadmap|strateg(?:y|ies)|step[- ]by[- ]step|steps to|next steps|milestones?|"
    r"phases|break (?:it |this )?down|how should (?:we|i))\b"
)
_RESEARCH_TRIGGERS = _words(
    "investigate investigating investigation explore exploring analyze analyse analysis analyzing "
    "analysing compare comparing comparison research researching find look dig root"
)
_RESEARCH = re.compile(
    r"\b(?:investigat\w*|explor(?:e|ing)|analy[sz]\w*|compar(?:e|ing|ison)|find out|research\w*|"
    r"look into|dig into|root cause)\b"
)
_INTENT_TRIGGERS = _words("need want have like help")
_INTENT = re.compile(r"\b(?:i (?:need|want|have) to|we (?:need|have) to|i'd like to|help me)\s+([a-z]+)")

# --- Entities -------------------------------------------------------------------------------
# Upper-case letters of the Latin, Greek and Cyrillic blocks (`re` has no \p{Lu}). Each pattern
# starts with a literal or class and checks what precedes it *after* the first character: a
# leading look-behind would stop the engine from skipping ahead, costing 5-20x.
_UPPER = "".join(chr(c) for c in range(0x41, 0x530) if chr(c).isupper() and chr(c).isalpha())
_URL = re.compile(r"(?:https?|ftp|file|wss?)://[^\s<>\"'`]+", re.I)
_BACKTICK = re.compile(r"`(?<!``)([^`\n]{1,200})`(?!`)")
_QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|'(?<![\w']')([^'\n]{1,200})'(?![\w'])")
_PATH_HINT = re.compile(r"[/\\]|\.(?=[A-Za-z])")
_SPACE = re.compile(r"\s")
_EXTENSION = re.compile(r"[^/\\]\.([A-Za-z][A-Za-z0-9]{0,7})$")
_PROPER = re.compile(rf"[{_UPPER}](?<![\w'’\-].)[\w'’\-]*(?:[ \t]+[{_UPPER}][\w'’\-]*)*")
_PROPER_STOP = _words(
    "i i'm i'll i've i'd a an the and or but if then do don't not no yes ok okay please thanks thank "
    "hi hello hey never must only can can't cannot should will would could is are it this that my your "
    "we you he she they what why how when where who which also just"
)
_SENTENCE_END = frozenset(".!?\n:;\"'(“‘>*-#")
_CLEAN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]+|\s{2,}")

# --- Constraints ----------------------------------------------------------------------------
_CONSTRAINT_TRIGGERS = _words(
    "must mustn never don dont not cannot can cant should shouldn doesn only before after until till "
    "without least most than within avoid sure ensure require required by"
)
_CONSTRAINT = re.compile(
    r"(?:must(?:n't| not)?|never|don'?t|do not|does not|doesn'?t|cannot|can'?t|should(?:n'?t| not)|"
    r"only|before|after|until|till|without|at (?:least|most)|no (?:more|less|later|earlier) than|"
    r"within|avoid|make sure|ensure|required?|by (?:tomorrow|tonight|today|noon|midnight|eod|eow|"
    r"end of (?:the )?(?:day|week|month|year|sprint)|the end of \w+|next \w+|"
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day|\d{1,2}(?::\d{2})?\s*(?:am|pm)?\b|\d{4}-\d{2}-\d{2}))"
    r"\b[^.;!?,\n]{0,80}"
)
_PIN = re.compile(r"(===|==|>=|<=|~=|!=|~>|\^|@)\s*v?\d+(?:\.[\w*]+)*")
_PIN_NAME = re.compile(r"[A-Za-z][\w.\-\[\]]*")

# --- Risk ---------------------------------------------------------------------------------
# (normalised name, words that alone flag it, words that make `pattern` worth running, pattern).
# Words are checked against a set first, so the usual input with no danger words runs no regex;
# gated patterns like this one may start with \b, since they only run when their words occur.
_RiskRule = tuple[str, frozenset[str], frozenset[str], re.Pattern[str] | None]
_RISK_RULES: tuple[_RiskRule, ...] = tuple(
    (name, _words(direct), _words(triggers), re.compile(rf"\b(?:{pattern})") if pattern else None)
    for name, direct, triggers, pattern in (
        ("rm -rf", "", "rm", r"rm\s+(?:-\w+\s+)*-\w*r"),
        ("delete", "delete deletes deleted deleting deletion", "rm", r"rm\s"),
        ("remove", "remove removes removed removing removal", "", ""),
        ("drop table", "", "drop", r"drop\s+(?:table|column|index|view|collection)\b"),
        ("drop database", "", "drop", r"drop\s+(?:database|schema|db)\b"),
        ("truncate", "truncate truncates truncated truncating", "", ""),
        (
            "wipe",
            "wipe wipes wiped wiping erase erases erased erasing purge purged purging nuke "
            "destroy destroys destroyed destroying",
            "",
            "",
        ),
        ("sudo", "sudo", "su root", r"su\s+-|as root\b"),
        ("chmod 777", "", "chmod", r"chmod\s+(?:-r\s+)?(?:0?777|a\+rwx)\b"),
        (
            "force push",
            "",
            "push pushed pushing",
            r"force[\s-]?push|push\b(?:\s+\S+){0,4}?\s+(?:--force(?:-with-lease)?|-f)(?![\w-])",
        ),
        ("reset --hard", "", "reset", r"reset\s+--hard\b"),
        ("git clean", "", "clean", r"git\s+clean\s+-\w*f"),
        ("production", "prod production", "live", r"live (?:server|database|db|site|environment)\b"),
        ("deploy", "deploy deploys deployed deploying deployment", "", ""),
        (
            "credentials",
            "credential credentials password passwords passwd passphrase secret secrets token tokens",
            "private api ssh access rsa env",
            r"(?:private|api|ssh|access)[\s_-]?keys?\b|id_rsa\b|(?<=\.)(?<![\w.]\.)env\b",
        ),
        (
            "format disk",
            "mkfs",
            "format dd",
            r"format\s+(?:the\s+|my\s+)?(?:disk|drive|partition|volume|hard\s*drive|[a-z]:)|dd\s+if=",
        ),
        ("shutdown", "shutdown poweroff halt", "shut init", r"shut\s*down\b|init\s+0\b"),
        ("reboot", "reboot rebooting", "restart", r"restart (?:the )?(?:server|machine|host)\b"),
        ("kill -9", "killall pkill", "kill", r"kill\s+-(?:9|kill|sigkill)\b"),
        ("curl | sh", "", "curl wget", r"(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b"),
        ("overwrite", "overwrite overwrites overwriting overwritten clobber", "dev", r">\s*/dev/sd"),
    )
)
_RISK_TRIGGERS: frozenset[str] = frozenset().union(*(d | t for _, d, t, _ in _RISK_RULES))

# --- Ambiguity and tools --------------------------------------------------------------------
_VAGUE_WORDS = _words(
    "something somehow somewhere someway maybe perhaps stuff thing things whatever etc anything "
    "idk dunno kinda sorta"
)
_VAGUE_PHRASE_TRIGGERS = _words("kind sort so")
_VAGUE_PHRASE = re.compile(r"\b(?:kind of|sort of|and so on|or so)\b")
_QUESTION_MARKS = re.compile(r"[?？]+")
_TOOL_WORDS = _words(
    "file files directory directories folder folders repo repository code test tests log logs database "
    "db command commands terminal shell script search web website fetch download git branch api endpoint "
    "server process disk install config"
)


def perceive(text: str) -> Perception:
    """Describe one user input with rules alone.

    Never raises on a ``str`` of any content (NUL bytes, lone surrogates, RTL text, emoji) or
    size. Only the first `HEAD_CHARS` and, for longer inputs, the last `TAIL_CHARS` characters
    are analysed; the length rules of the ambiguity score use the full length. Lists hold at
    most `MAX_LIST_ITEMS` entries of at most `MAX_ITEM_CHARS` characters.

    Args:
        text: The raw user message.

    Returns:
        A frozen `Perception`.
    """
    window = text if len(text) <= HEAD_CHARS + TAIL_CHARS else text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]
    length = len(text) if window is not text else len(text.strip())
    if not window.strip():
        return Perception(
            task_type="unclear",
            entities=[],
            constraints=[],
            ambiguity=EMPTY_INPUT_AMBIGUITY,
            risk_indicators=[],
            question_count=0,
            likely_needs_tools=False,
        )
    low = window.lower()
    tokens = _WORD.findall(low)
    words = frozenset(tokens)

    # Explicit spans first; each is blanked out so later patterns do not see it twice.
    entities: list[str] = []
    masked = window
    has_url = "://" in window
    if has_url:
        masked = _take(_URL, masked, entities, strip=".,;:!?)]}'\"")
    if "`" in masked:
        masked = _take(_BACKTICK, masked, entities)
    if '"' in masked or "'" in masked or "“" in masked:
        masked = _take(_QUOTED, masked, entities)
    n_before_paths = len(entities)
    masked = _take_paths(masked, entities)
    has_path = len(entities) > n_before_paths
    _take_proper_nouns(masked, entities)
    entities = _finish(entities)

    constraints = _finish(_constraints(window, low, words))
    risks = _risks(low, words) if not words.isdisjoint(_RISK_TRIGGERS) else []
    task_type = _task_type(low, masked.lower(), words)
    question_count = len(_QUESTION_MARKS.findall(masked)) if ("?" in masked or "？" in masked) else 0
    if question_count == 0 and task_type == "question":
        question_count = 1

    vague = sum(map(_VAGUE_WORDS.__contains__, tokens))
    if not words.isdisjoint(_VAGUE_PHRASE_TRIGGERS):
        vague += len(_VAGUE_PHRASE.findall(low))
    score = AMBIGUITY_BASE
    score += VAGUE_WORD_WEIGHT * min(vague, _COUNT_CAPS["vague"])
    score += ENTITY_WEIGHT * min(len(entities), _COUNT_CAPS["entities"])
    score += CONSTRAINT_WEIGHT * min(len(constraints), _COUNT_CAPS["constraints"])
    score += SHORT_INPUT_PENALTY if length < SHORT_INPUT_CHARS else 0.0
    score += DETAILED_INPUT_BONUS if length > DETAILED_INPUT_CHARS else 0.0
    score += MULTI_QUESTION_WEIGHT * min(max(question_count - 1, 0), _COUNT_CAPS["extra_questions"])
    score += UNCLEAR_TASK_PENALTY if task_type == "unclear" else 0.0

    needs_tools = (
        task_type in ("action", "research")
        or bool(risks)
        or has_url
        or has_path
        or (task_type != "meta" and not words.isdisjoint(_TOOL_WORDS))
    )
    # Plain validation: measured faster than model_construct here (about 1.4 us against 3).
    return Perception(
        task_type=task_type,
        entities=entities,
        constraints=constraints,
        ambiguity=round(min(max(score, 0.0), 1.0), 3),
        risk_indicators=risks,
        question_count=question_count,
        likely_needs_tools=needs_tools,
    )


def _take(pattern: re.Pattern[str], text: str, out: list[str], strip: str = "") -> str:
    """Append each match (its first non-empty group, else all of it) and blank it out of `text`."""
    parts: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(next((g for g in m.groups() if g), m.group(0)).rstrip(strip))
        parts += (text[last : m.start()], " " * (m.end() - m.start()))
        last = m.end()
        if len(out) >= 2 * MAX_LIST_ITEMS:
            break
    return "".join([*parts, text[last:]]) if parts else text


def _take_paths(masked: str, out: list[str]) -> str:
    """Find path-like tokens around each slash or ``.ext`` and blank them out.

    Paths are found from their rare characters outward rather than by a pattern tried at every
    word start, which kept costing more than all other rules together.
    """
    found: list[str] = []
    end = 0
    for hint in _PATH_HINT.finditer(masked):
        if hint.start() < end:
            continue
        start = (
            max(
                masked.rfind(" ", 0, hint.start()),
                masked.rfind("\n", 0, hint.start()),
                masked.rfind("\t", 0, hint.start()),
            )
            + 1
        )
        space = _SPACE.search(masked, hint.start())
        end = space.start() if space else len(masked)
        token = masked[start:end]
        candidate = token.strip("()[]{}<>,;:!?\"'*").rstrip(".")
        if _is_path(candidate):
            out.append(candidate)
            found.append(candidate)
            if len(out) >= 2 * MAX_LIST_ITEMS:
                break
    for token in found:
        masked = masked.replace(token, " " * len(token))
    return masked


def _is_path(token: str) -> bool:
    """Keep ``/etc/x``, ``~/x``, ``./x``, ``C:\\x``, ``src/app.py``, ``a/b/c``, ``app.py``;
    reject slash-words and abbreviations ("and/or", "TCP/IP", "1/2/2024", "e.g")."""
    if len(token) < 2 or not any(c.isalpha() for c in token):
        return False
    if token.startswith(("/", "~/", "./", "../")) or token[1:3] == ":\\":
        return True
    ext = _EXTENSION.search(token)
    if ext and (len(ext.group(1)) > 1 or (ext.group(1).lower() in "chrs" and ext.start() > 0)):
        return True
    return token.count("/") + token.count("\\") >= 2 or (token.endswith("/") and len(token) > 2)


def _take_proper_nouns(masked: str, out: list[str]) -> None:
    """Capitalised words that do not open a sentence, runs merged ("New York")."""
    for m in _PROPER.finditer(masked):
        words = m.group(0).split()
        j = m.start() - 1
        while j >= 0 and masked[j] in " \t":
            j -= 1
        if j < 0 or masked[j] in _SENTENCE_END:
            words = words[1:]
        while words and words[0].lower() in _PROPER_STOP:
            words = words[1:]
        while words and words[-1].lower() in _PROPER_STOP:
            words = words[:-1]
        if words:
            out.append(" ".join(words))
            if len(out) >= 2 * MAX_LIST_ITEMS:
                return


def _constraints(window: str, low: str, words: frozenset[str]) -> list[str]:
    found: list[str] = []
    if not words.isdisjoint(_CONSTRAINT_TRIGGERS):
        same = len(low) == len(window)  # lower() can change lengths ("İ"); then report lower case
        for m in _CONSTRAINT.finditer(low):
            s = m.start()
            if s and (low[s - 1].isalnum() or low[s - 1] == "_"):
                continue  # "hereafter" is not "after"
            found.append(window[s : m.end()] if same else m.group(0))
    for m in _PIN.finditer(window):
        before = window[max(0, m.start() - 60) : m.start()]
        gap = before[len(before.rstrip()) :]
        name = before.rstrip().rpartition(" ")[2]
        if not _PIN_NAME.fullmatch(name) or (gap and m.group(1) in "^@"):
            name = ""  # "^" and "@" only count glued to a name: lodash@4.17, react^18
        if name or m.group(1) not in "^@":
            found.append(name + gap + m.group(0) if name else m.group(0))
    return found


def _risks(low: str, words: frozenset[str]) -> list[str]:
    found: list[str] = []
    for name, direct, triggers, pattern in _RISK_RULES:
        if name in found:
            continue
        if not words.isdisjoint(direct) or (
            pattern is not None and not words.isdisjoint(triggers) and pattern.search(low)
        ):
            found.append(name)
    return found


def _task_type(low: str, masked_low: str, words: frozenset[str]) -> TaskType:
    """The leading verb first, then question form, then keywords anywhere.

    Keyword rules read `masked_low` (quotes, code, URLs and paths blanked out) so the words a
    user *mentions* ("search for 'plan'") do not count as the words they *use*.
    """
    if not words.isdisjoint(("you", "your", "yourself")) and _META.search(masked_low):
        return "meta"
    lead_match = _LEAD.match(low, 0, 300)
    lead = " ".join(lead_match.group(1).split()) if lead_match else ""
    lead_word = lead.partition(" ")[0]
    if "yourself" in words and lead_word not in _ACTION_VERBS and "yourself" in masked_low:
        return "meta"
    if lead in _RESEARCH_VERBS or lead_word in _RESEARCH_VERBS:
        return "research"
    if lead in _PLANNING_VERBS or lead_word in _PLANNING_VERBS:
        return "planning"
    if lead_word in _ACTION_VERBS:
        return "action"
    if lead_word in _ASK_VERBS or low.rstrip().endswith(("?", "？")) or _QUESTION_START.match(low, 0, 300):
        return "planning" if _PLANNING_QUESTION.search(masked_low) else "question"
    if not words.isdisjoint(_PLANNING_TRIGGERS) and _PLANNING.search(masked_low):
        return "planning"
    if not words.isdisjoint(_RESEARCH_TRIGGERS) and _RESEARCH.search(masked_low):
        return "research"
    intent = _INTENT.search(masked_low) if not words.isdisjoint(_INTENT_TRIGGERS) else None
    return "action" if intent and intent.group(1) in _ACTION_VERBS else "unclear"


def _finish(items: list[str]) -> list[str]:
    """Clean, cut, deduplicate (case-insensitively) and cap a list, keeping first occurrences."""
    if not items:
        return items
    seen: set[str] = set()
    result: list[str] = []
    for raw in items:
        item = raw if raw.isprintable() and "  " not in raw else _CLEAN.sub(" ", raw)
        item = _cut(item.strip(), MAX_ITEM_CHARS)
        if item and item.lower() not in seen:
            seen.add(item.lower())
            result.append(item)
            if len(result) >= MAX_LIST_ITEMS:
                break
    return result


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
