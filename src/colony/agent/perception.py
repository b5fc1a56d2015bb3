"""Perception: a rule-based pass over each user input before the model sees it.

Small models do better when the request arrives pre-digested: what kind of task it is, which
things it names, which limits it sets and which words signal danger. `perceive` extracts that
with precompiled regular expressions only -- no model call, no I/O -- so it can run on every
turn. The result feeds three consumers: `Perception.summary` is injected into the system
prompt, `ambiguity` lets the loop ask a clarifying question or act more conservatively, and
`risk_indicators` let governance see danger words before any tool is called.

These are heuristics, not understanding. Negation is not parsed ("don't delete prod" still
reports ``delete`` and ``production``: a risk signal is meant to be over-inclusive), entity
extraction is pattern matching, not NER, and the ambiguity weights below are hand-set, not
calibrated. Measure before trusting any of it: injecting such summaries can also *hurt* a model
by inviting it to act on context it did not need.

Cost is bounded: only the first `HEAD_CHARS` and last `TAIL_CHARS` characters are analysed (the
request usually sits at one end of a long paste), so a 1 MB input costs about as much as a 5 KB one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict

from colony.tools.redact import redact_text

__all__ = [
    "AMBIGUITY_BASE",
    "CONSTRAINT_WEIGHT",
    "DETAILED_INPUT_BONUS",
    "DETAILED_INPUT_CHARS",
    "EMPTY_INPUT_AMBIGUITY",
    "ENTITY_WEIGHT",
    "HEAD_CHARS",
    "MAX_ITEM_CHARS",
    "MAX_LIST_ITEMS",
    "MULTI_QUESTION_WEIGHT",
    "SHORT_INPUT_CHARS",
    "SHORT_INPUT_PENALTY",
    "TAIL_CHARS",
    "UNCLEAR_TASK_PENALTY",
    "VAGUE_WORD_WEIGHT",
    "Perception",
    "TaskType",
    "perceive",
]

TaskType = Literal["question", "action", "planning", "research", "meta", "unclear"]

# --- Work caps ------------------------------------------------------------------------------
HEAD_CHARS = 4096
"""Characters analysed from the start of the input."""
TAIL_CHARS = 1024
"""Characters analysed from the end of an input longer than ``HEAD_CHARS + TAIL_CHARS``."""
MAX_LIST_ITEMS = 20
"""Most entities / constraints / risk indicators kept."""
MAX_ITEM_CHARS = 200
"""Longest entity or constraint kept (longer ones are cut)."""
_SUMMARY_ITEMS = 8
_SUMMARY_LINE_CHARS = 240

# --- Ambiguity weights (additive, result clamped to [0, 1]) ---------------------------------
AMBIGUITY_BASE = 0.3
"""Starting point: a plain request with no signal either way is mildly ambiguous."""
VAGUE_WORD_WEIGHT = 0.15
"""Added per vague word ("something", "maybe", "stuff"...), counted up to `_MAX_VAGUE_COUNTED`."""
ENTITY_WEIGHT = -0.1
"""Added per entity (names make a request concrete), counted up to `_MAX_ENTITIES_COUNTED`."""
SHORT_INPUT_CHARS = 20
SHORT_INPUT_PENALTY = 0.25
"""Added when the stripped input is shorter than `SHORT_INPUT_CHARS`."""
MULTI_QUESTION_WEIGHT = 0.1
"""Added per question beyond the first (several questions at once dilute intent)."""
DETAILED_INPUT_CHARS = 200
DETAILED_INPUT_BONUS = -0.15
"""Added when the input is longer than `DETAILED_INPUT_CHARS`."""
CONSTRAINT_WEIGHT = -0.05
"""Added per constraint (stated limits narrow the request), counted up to `_MAX_CONSTRAINTS_COUNTED`."""
UNCLEAR_TASK_PENALTY = 0.15
"""Added when no task type could be recognised."""
EMPTY_INPUT_AMBIGUITY = 1.0
"""An empty or whitespace-only input says nothing at all."""
_MAX_VAGUE_COUNTED = 4
_MAX_ENTITIES_COUNTED = 3
_MAX_EXTRA_QUESTIONS_COUNTED = 3
_MAX_CONSTRAINTS_COUNTED = 2


class Perception(BaseModel):
    """What the rules saw in one user input. Immutable: it describes a message that happened."""

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

        Kept terse on purpose: every extra line competes with the user's own words for a small
        model's attention. Secret-shaped substrings are masked because quoted entities can echo
        a pasted token into the system prompt, which may be logged separately.
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
        return "\n".join(redact_text(_cut(line, _SUMMARY_LINE_CHARS)) for line in lines)




def _words(text: str) -> frozenset[str]:
    """A word set written as one string: long vocabularies stay readable."""
    return frozenset(text.split())


# --- Task type ------------------------------------------------------------------------------
_POLITE_PREFIX = (
    r"(?:please|pls|kindly|ok(?:ay)?|hey|hi|so|now|then|also|just|first|next|go ahead and|"
    r"can you|could you|would you|will you|can u|could u|"
    r"i (?:need|want|would like|'d like|d like) you to|let'?s|let us)"
)
_LEAD = re.compile(rf"^[\W_]*(?:{_POLITE_PREFIX}\b[\s,!.:]*)*([a-z]+(?:\s+(?:out|into|up)\b)?)", re.I)
_ACTION_VERBS = _words(
    "pin run execute create make build fix write delete remove deploy add update install uninstall rename "
    "move copy edit change modify refactor implement generate set configure start stop restart kill "
    "push pull commit merge rebase clone open close send upload download apply revert drop truncate "
    "format reboot shutdown test lint migrate upgrade downgrade patch replace insert append save clean "
    "clear reset enable disable schedule fetch convert compile bump publish release rollback sort "
    "print list show rm mkdir chmod chown sudo git pip npm docker kubectl curl wget cd ls cat "
    "tag import export backup restore wipe erase purge destroy archive"
)
_PLANNING_VERBS = _words("plan outline strategize prioritize brainstorm") | {"map out"}
_RESEARCH_VERBS = _words(
    "investigate explore analyze analyse compare research study evaluate assess examine survey "
    "audit diagnose benchmark profile"
) | {"find out", "look into", "dig into"}
_META_STRONG = re.compile(
    r"\b(?:your (?:memory|memories|status|state|capabilit(?:y|ies)|limitations?|tools|config(?:uration)?|"
    r"context|own|name|purpose|instructions|settings|knowledge|health|mood|beliefs?)|"
    r"(?:about|describe|introduce|explain|reflect on|assess|evaluate|diagnose) yourself|"
    r"what (?:can|do) you (?:do|know|remember)|who are you|what are you|how do you work|are you (?:ok|okay|alive|there))\b",
    re.I,
)
_META_WEAK = re.compile(r"\byourself\b", re.I)
_QUESTION_START = re.compile(
    r"^[\W_]*(?:(?:what|why|how|when|where|who|whom|whose|which)\b|"
    r"(?:is|are|was|were|can|could|would|should|will|does|do|did|has|have|may|might|shall)\s+"
    r"(?:you|i|we|it|this|that|these|those|there|the|a|an|my|your|our|he|she|they|any|anyone)\b)",
    re.I,
)
_PLANNING_QUESTION = re.compile(
    r"\b(?:how (?:should|would|could|do) (?:we|i)|what(?:'s| is| are)? (?:the |a |our )?(?:best )?"
    r"(?:plan|strategy|approach|roadmap|next steps|steps)|what steps)\b",
    re.I,
)
_PLANNING_WORDS = re.compile(
    r"\b(?:plan(?:s|ning)?|roadmap|strategy|strategies|step[- ]by[- ]step|steps to|next steps|milestones?|"
    r"phases|break (?:it |this )?down|how should (?:we|i))\b",
    re.I,
)
_RESEARCH_WORDS = re.compile(
    r"\b(?:investigat\w*|explor(?:e|ing)|analy[sz]\w*|compar(?:e|ing|ison)|find out|research\w*|"
    r"look into|dig into|root cause)\b",
    re.I,
)
_ACTION_INTENT = re.compile(
    r"\b(?:i (?:need|want|have) to|we (?:need|have) to|i'd like to|help me)\s+([a-z]+)", re.I
)

# --- Entities -------------------------------------------------------------------------------
# Uppercase letters of the Latin, Greek and Cyrillic blocks: `re` has no \p{Lu}.
_UPPER = "".join(chr(c) for c in range(0x41, 0x530) if chr(c).isupper() and chr(c).isalpha())
_URL = re.compile(r"\b(?:https?|ftp|file|wss?)://[^\s<>\"'`]+", re.I)
_BACKTICK = re.compile(r"(?<!`)`([^`\n]{1,200})`(?!`)")
_QUOTED = re.compile(r"\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|(?<![\w'])'([^'\n]{1,200})'(?![\w'])")
_EXT = r"\.[A-Za-z0-9]{1,8}"
_PATH = re.compile(
    r"(?<![\w/.~-])(?:"
    r"[A-Za-z]:\\[^\s\"'`<>|]+"  # C:\Users\x
    r"|(?:~|\.{1,2})?/[\w.\-~@+]+(?:/[\w.\-~@+]*)*"  # /etc/x, ~/x, ./x, ../x
    r"|[\w.\-@+]+(?:/[\w.\-@+]+)+/?"  # src/app.py, a/b/c, dir/
    rf"|[\w\-]+(?:{_EXT})?{_EXT}(?=[\s,;:)\]!?]|\.?$|\.\s)"  # app.py, archive.tar.gz
    r")"
)
_FILE_EXT_OK = re.compile(r"\.(?:[a-z][a-z0-9]{0,7})$", re.I)
_PROPER = re.compile(rf"(?<![\w'’-])[{_UPPER}][\w'’\-]*(?:[ \t]+[{_UPPER}][\w'’\-]*)*")
_PROPER_STOP = _words(
    "i i'm i'll i've i'd a an the and or but if then do don't not no yes ok okay please thanks thank "
    "hi hello hey never must only can can't cannot should will would could is are it this that my your "
    "we you he she they what why how when where who which also just"
)
_SENTENCE_END = frozenset(".!?\n:;\"'(“‘>*-#")
_CLEAN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]+|\s{2,}")

# --- Constraints ----------------------------------------------------------------------------
_CONSTRAINT = re.compile(
    r"\b(?:must(?:n't| not)?|never|don'?t|do not|does not|doesn't|cannot|can'?t|should(?:n't| not)|"
    r"only|before|after|until|till|without|at (?:least|most)|no (?:more|less|later|earlier) than|"
    r"within|avoid|make sure|ensure|required?|by (?:tomorrow|tonight|today|noon|midnight|eod|eow|"
    r"end of (?:the )?(?:day|week|month|year|sprint)|the end of \w+|next \w+|"
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day|\d{1,2}(?::\d{2})?\s*(?:am|pm)?\b|\d{4}-\d{2}-\d{2}))"
    r"[^.;!?,\n]{0,80}",
    re.I,
)
_VERSION_PIN = re.compile(
    r"(?:\b[A-Za-z][\w.\-\[\]]*\s*)?(?:===|==|>=|<=|~=|!=|~>|\^)\s*v?\d+(?:\.[\w*]+)*"
    r"|\b[A-Za-z][\w.\-]*@v?\d+(?:\.\d+)+\b"
)

# --- Risk -----------------------------------------------------------------------------------
_RISK_RULES: tuple[tuple[str, str], ...] = (
    ("rm_rf", r"\brm\s+(?:-\w+\s+)*-\w*r\w*"),
    ("delete", r"\bdelet(?:e|es|ed|ing|ion)\b"),
    ("remove", r"\bremov(?:e|es|ed|ing|al)\b"),
    ("drop_table", r"\bdrop\s+(?:table|column|index|view|collection)\b"),
    ("drop_database", r"\bdrop\s+(?:database|schema|db)\b"),
    ("truncate", r"\btruncat(?:e|es|ed|ing)\b"),
    ("wipe", r"\b(?:wip(?:e|es|ed|ing)|eras(?:e|es|ed|ing)|purg(?:e|es|ed|ing)|destroy\w*|nuke)\b"),
    ("sudo", r"\bsudo\b|\bsu\s+-|\bas root\b"),
    ("chmod_777", r"\bchmod\s+(?:-r\s+)?(?:0?777|a\+rwx)\b"),
    ("force_push", r"\bforce[\s-]?push\w*|\bpush\b(?:\s+\S+){0,4}?\s+(?:--force(?:-with-lease)?|-f)(?!\S)"),
    ("reset_hard", r"\breset\s+--hard\b"),
    ("git_clean", r"\bgit\s+clean\s+-\w*f"),
    ("production", r"\bprod(?:uction)?\b|\blive (?:server|database|db|site|environment)\b"),
    ("deploy", r"\bdeploy(?:s|ed|ing|ment)?\b"),
    (
        "credentials",
        r"\bcredentials?\b|\bpass(?:word|wd|phrase)s?\b|\bsecrets?\b|\btokens?\b|\bprivate[\s_-]?keys?\b|"
        r"\b(?:api|ssh|access)[\s_-]?keys?\b|\bid_rsa\b|(?<![\w.])\.env\b",
    ),
    ("format_disk", r"\bmkfs\b|\bformat\s+(?:the\s+|my\s+)?(?:disk|drive|partition|volume|hard\s*drive|[a-z]:)|\bdd\s+if="),
    ("shutdown", r"\bshut\s*down\b|\bpoweroff\b|\bhalt\b|\binit\s+0\b"),
    ("reboot", r"\breboot\w*|\brestart (?:the )?(?:server|machine|host)\b"),
    ("kill_9", r"\bkill\s+-(?:9|kill|sigkill)\b|\bkillall\b|\bpkill\b"),
    # Lookahead: the pipeline is not consumed, so a `sudo` inside it is still reported.
    ("curl_pipe_shell", r"\b(?:curl|wget)\b(?=[^|\n]{0,200}\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b)"),
    ("overwrite", r"\boverwrit(?:e|es|ing|ten)\b|\bclobber\w*|>\s*/dev/sd"),
)
_RISK_NAMES: dict[str, str] = {
    "rm_rf": "rm -rf",
    "drop_table": "drop table",
    "drop_database": "drop database",
    "chmod_777": "chmod 777",
    "force_push": "force push",
    "reset_hard": "reset --hard",
    "git_clean": "git clean",
    "format_disk": "format disk",
    "kill_9": "kill -9",
    "curl_pipe_shell": "curl | sh",
}
_RISK = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _RISK_RULES), re.I)

# --- Ambiguity and tools --------------------------------------------------------------------
_VAGUE = re.compile(
    r"\b(?:something|somehow|somewhere|someway|maybe|perhaps|stuff|things?|whatever|etc|"
    r"kind of|sort of|kinda|sorta|anything|idk|dunno|and so on|or so|some(?:thing)? like that)\b",
    re.I,
)
_QUESTION_MARKS = re.compile(r"[?？]+")
_TOOLISH = re.compile(
    r"\b(?:files?|director(?:y|ies)|folders?|repo(?:sitory)?|code|tests?|logs?|database|db|"
    r"commands?|terminal|shell|script|search|web|website|fetch|download|git|branch|api|endpoint|"
    r"server|process|disk|install\w*|config\w*)\b",
    re.I,
)


_Filter: TypeAlias = Callable[[str], str | None]


def perceive(text: str) -> Perception:
    """Describe one user input with rules alone.

    Never raises on a ``str`` of any content (NUL bytes, lone surrogates, RTL, emoji) or size.
    Only the first `HEAD_CHARS` and, for long inputs, the last `TAIL_CHARS` characters are
    analysed; length-based ambiguity rules use the full length. Lists are capped at
    `MAX_LIST_ITEMS` entries of at most `MAX_ITEM_CHARS` characters.

    Args:
        text: The raw user message.

    Returns:
        A frozen `Perception`.
    """
    stripped_len = len(text.strip()) if len(text) <= HEAD_CHARS else len(text)
    if stripped_len == 0:
        return Perception.model_construct(
            task_type="unclear",
            entities=[],
            constraints=[],
            ambiguity=EMPTY_INPUT_AMBIGUITY,
            risk_indicators=[],
            question_count=0,
            likely_needs_tools=False,
        )
    window = _window(text)

    # Explicit spans first; each is blanked out so later patterns do not see it twice.
    entities: list[str] = []
    masked = _take(_URL, window, entities, _strip_url)
    masked = _take(_BACKTICK, masked, entities, None)
    masked = _take(_QUOTED, masked, entities, None)
    masked = _take(_PATH, masked, entities, _keep_path)
    _proper_nouns(masked, entities)
    entities = _finish(entities)

    constraints = _finish([m.group(0) for m in _CONSTRAINT.finditer(window)] + _VERSION_PIN.findall(window))
    risks = _risks(window)

    task_type = _task_type(window, masked)
    question_count = len(_QUESTION_MARKS.findall(masked))
    if question_count == 0 and task_type == "question":
        question_count = 1

    ambiguity = _ambiguity(window, stripped_len, len(entities), len(constraints), question_count, task_type)
    needs_tools = (
        task_type in ("action", "research")
        or bool(risks)
        or any("/" in e or "\\" in e or _FILE_EXT_OK.search(e) for e in entities)
        or (task_type != "meta" and _TOOLISH.search(window) is not None)
    )
    # model_construct: every field is built here from checked values; skipping validation keeps
    # a typical call in the tens of microseconds.
    return Perception.model_construct(
        task_type=task_type,
        entities=entities,
        constraints=constraints,
        ambiguity=ambiguity,
        risk_indicators=risks,
        question_count=question_count,
        likely_needs_tools=needs_tools,
    )


def _window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def _take(
    pattern: re.Pattern[str],
    text: str,
    out: list[str],
    keep: _Filter | None,
) -> str:
    """Append the pattern's matches (first non-empty group, else whole match) and blank them out."""
    if len(out) >= MAX_LIST_ITEMS * 2:
        return text
    parts: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        value = next((g for g in m.groups() if g), m.group(0)) if m.groups() else m.group(0)
        if keep is not None:
            kept = keep(value)
            if kept is None:
                continue
            value = kept
        out.append(value)
        parts.append(text[last : m.start()])
        parts.append(" " * (m.end() - m.start()))
        last = m.end()
        if len(out) >= MAX_LIST_ITEMS * 2:
            break
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _strip_url(url: str) -> str:
    return url.rstrip(".,;:!?)]}'\"")


def _keep_path(path: str) -> str | None:
    """Reject slash-words that are not paths ("and/or", "TCP/IP", "1/2/2024")."""
    path = path.rstrip(".,;:!?")
    if path.startswith(("/", "~/", "./", "../")) or (len(path) > 2 and path[1] == ":"):
        return path if len(path) > 1 and any(c.isalpha() for c in path) else None
    if _FILE_EXT_OK.search(path) and not path.replace(".", "").isdigit():
        return path
    if path.count("/") >= 2 and any(c.isalpha() for c in path):
        return path
    return None


def _proper_nouns(masked: str, out: list[str]) -> None:
    """Capitalised words that are not sentence-initial, with runs merged ("New York")."""
    for m in _PROPER.finditer(masked):
        words = m.group(0).split()
        j = m.start() - 1
        while j >= 0 and masked[j] in " \t":
            j -= 1
        if j < 0 or masked[j] in _SENTENCE_END:
            words = words[1:]
        while words and words[0].lower().strip("'’") in _PROPER_STOP:
            words = words[1:]
        while words and words[-1].lower().strip("'’") in _PROPER_STOP:
            words = words[:-1]
        if words:
            out.append(" ".join(words))
            if len(out) >= MAX_LIST_ITEMS * 2:
                return


def _finish(items: list[str]) -> list[str]:
    """Clean, cut, deduplicate (case-insensitively) and cap a list, keeping first occurrences."""
    seen: set[str] = set()
    result: list[str] = []
    for raw in items:
        item = _cut(_CLEAN.sub(" ", raw).strip(), MAX_ITEM_CHARS)
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            result.append(item)
            if len(result) >= MAX_LIST_ITEMS:
                break
    return result


def _risks(window: str) -> list[str]:
    found: list[str] = []
    for m in _RISK.finditer(window):
        group = m.lastgroup or ""
        name = _RISK_NAMES.get(group, group)
        if name not in found:
            found.append(name)
    return found


def _task_type(window: str, masked: str) -> TaskType:
    """Classify by the leading verb first, then by question form, then by keywords anywhere.

    Keyword scans run on `masked` (quotes, code, URLs and paths blanked out) so that the words a
    user *mentions* ("search for 'plan'") do not count as the words they *use*.
    """
    if _META_STRONG.search(masked):
        return "meta"
    lead_match = _LEAD.match(window[:300])
    lead = " ".join(lead_match.group(1).lower().split()) if lead_match else ""
    lead_word = lead.split(" ", 1)[0]
    if lead_word not in _ACTION_VERBS and _META_WEAK.search(masked):
        return "meta"
    if lead in _RESEARCH_VERBS or lead_word in _RESEARCH_VERBS:
        return "research"
    if lead in _PLANNING_VERBS or lead_word in _PLANNING_VERBS:
        return "planning"
    if lead_word in _ACTION_VERBS:
        return "action"
    if window.rstrip().endswith(("?", "？")) or _QUESTION_START.match(window[:300]):
        return "planning" if _PLANNING_QUESTION.search(masked) else "question"
    if _PLANNING_WORDS.search(masked):
        return "planning"
    if _RESEARCH_WORDS.search(masked):
        return "research"
    intent = _ACTION_INTENT.search(masked)
    if intent and intent.group(1).lower() in _ACTION_VERBS:
        return "action"
    return "unclear"


def _ambiguity(
    window: str,
    length: int,
    n_entities: int,
    n_constraints: int,
    n_questions: int,
    task_type: TaskType,
) -> float:
    score = AMBIGUITY_BASE
    score += VAGUE_WORD_WEIGHT * min(len(_VAGUE.findall(window)), _MAX_VAGUE_COUNTED)
    score += ENTITY_WEIGHT * min(n_entities, _MAX_ENTITIES_COUNTED)
    score += CONSTRAINT_WEIGHT * min(n_constraints, _MAX_CONSTRAINTS_COUNTED)
    if length < SHORT_INPUT_CHARS:
        score += SHORT_INPUT_PENALTY
    if length > DETAILED_INPUT_CHARS:
        score += DETAILED_INPUT_BONUS
    score += MULTI_QUESTION_WEIGHT * min(max(n_questions - 1, 0), _MAX_EXTRA_QUESTIONS_COUNTED)
    if task_type == "unclear":
        score += UNCLEAR_TASK_PENALTY
    return round(min(max(score, 0.0), 1.0), 3)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
