"""The graph channel on writing it was never tuned to: generic entities, mentions and multi-hop paths.

Every sentence here is in a style the eval generators never use — passive voice, notes-style
fragments, bullet lists, names with particles ("van der Berg"), hyphenated and possessive names,
all-caps acronyms, code identifiers — and the multi-hop corpus is our own: 2- and 3-hop chains
whose answer memory shares no content word with the question, among distractors that name the
same things in other roles.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from colony.config import Settings
from colony.memory import Memory, MemoryIn, open_memory
from colony.memory._entities import MAX_MENTIONS, extract_entities, relation_cues
from colony.memory._paths import skeleton
from colony.memory.graph import graph_recall, query_entities
from colony.store import Database, open_database

# -- entities from generic signals -----------------------------------------------------------------

ENTITY_CASES: list[tuple[str, set[str], set[str]]] = [
    # (text, keys that must be found, keys that must not)
    ("The outage report was written by Ingrid van der Berg.", {"ingrid van der berg", "outage report"},
     {"written", "berg", "van"}),
    ("Payments — owned by team Falcon, see INC-2231", {"payments", "inc-2231", "falcon"}, {"see", "owned"}),
    ("- owner: Priya Shah\n- on-call: the Lynx squad\n- host: web-12.eu-west",
     {"priya shah", "lynx squad", "web-12.eu-west"}, {"owner priya shah"}),
    ("Jean-Luc Moreau was hired by the NASA-JPL office in 2019.", {"jean-luc moreau", "nasa-jpl office", "nasa-jpl"},
     {"2019", "hired"}),
    ("Deposits go through Bank of America and Johnson & Johnson pays in euros.",
     {"bank of america", "johnson & johnson", "deposits", "euros"}, {"go", "pays"}),
    ("Call parseConfig() before ERR_CONN_RESET shows up; set --dry-run on src/app.py.",
     {"parseconfig", "err_conn_reset", "--dry-run", "src/app.py"}, {"call", "shows"}),
    ("Pinned s3sync==2.5.5 and libfoo 1.2.3 after the GDPR review.",
     {"s3sync==2.5.5", "gdpr review", "gdpr"}, {"pinned"}),
    ('The flag "fast path" is off; see `cache.ttl`.', {"fast path", "cache.ttl"}, {"see"}),
    ("In Nethercote you'll find St Anselm's Children's Centre.", {"nethercote", "st anselm's children's centre"},
     {"you'll", "find"}),
    ("Alice tests the parser and calls Bob daily.", {"alice", "parser", "bob"}, {"tests", "calls", "daily"}),
    ("Unit tests need mocks; API calls are throttled by the gateway.", {"unit tests", "mocks", "api calls", "gateway"},
     {"need", "throttled"}),
    ("ERR_QUOTA_EXCEEDED is raised by the billing-meter service.",
     {"err_quota_exceeded", "billing-meter service", "billing-meter"}, {"raised"}),
    ("Ravi's laptop runs Arch; the teams' pager rotates weekly.", {"ravi", "laptop", "arch", "pager"},
     {"ravi's laptop", "runs"}),
    ("Culture and Leisure runs the Marlowe Street Library.",
     {"culture and leisure", "marlowe street library"}, {"runs"}),
    ("Kofi MacLeod is a member of the platform group.", {"kofi macleod", "platform group"}, {"member", "macleod"}),
]


@pytest.mark.parametrize(("text", "wanted", "unwanted"), ENTITY_CASES, ids=[c[0][:40] for c in ENTITY_CASES])
def test_entities_come_from_generic_signals(text: str, wanted: set[str], unwanted: set[str]) -> None:
    found = set(extract_entities(text))
    assert wanted <= found, f"missing {wanted - found} in {found}"
    assert not unwanted & found, f"unexpected {unwanted & found}"


def test_entity_keys_are_what_a_question_names() -> None:
    """A question's n-grams find the keys a memory was stored under, whatever the case."""
    for text, question in [
        ("Ingrid van der Berg heads the Oslo platform group.", "Who reports to Ingrid van der Berg?"),
        ("Payments — owned by team Falcon, see INC-2231", "what happened in inc-2231"),
        ("St Anselm's Children's Centre closes early on Fridays.", "Where is St Anselm's Children's Centre?"),
        ("The billing-meter service emits ERR_QUOTA_EXCEEDED.", "who owns the billing-meter service"),
    ]:
        candidates = set(query_entities(question)) | set(extract_entities(question))
        assert candidates & set(extract_entities(text)), (text, question)


def test_relation_cues_need_no_sentence_shape() -> None:
    assert relation_cues("Escalations: the Lynx squad (led by Ana Ruiz)") == ["leads"]
    assert "member_of" in relation_cues("Kwame — a member of the Heron team since May")
    assert relation_cues("Lunch was great.") == []
    assert relation_cues("Aiko and Theo swapped on-call weeks.") == []  # "on-call" is no "call"


def test_a_frame_is_what_is_left_without_the_names() -> None:
    a = "Vehicle 6706 moved to the Millbrook depot to cover for breakdowns."
    b = "Vehicle 3926 moved to the Millbrook depot to cover for breakdowns."
    assert skeleton(a, extract_entities(a)) == skeleton(b, extract_entities(b)) != frozenset()
    c = "Route 10 runs out of the Millbrook depot."
    assert skeleton(c, extract_entities(c)) != skeleton(a, extract_entities(a))


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_entity_extraction_never_raises_and_keys_are_normalised(text: str) -> None:
    keys = extract_entities(text)
    assert len(keys) <= MAX_MENTIONS and len(set(keys)) == len(keys)
    for key in keys:
        assert key and key == key.lower() and key == key.strip() and "  " not in key
    relation_cues(text)


def test_entity_extraction_of_nothing_and_of_huge_input() -> None:
    assert extract_entities("") == [] and extract_entities(None) == []  # type: ignore[arg-type]
    assert relation_cues(None) == []  # type: ignore[arg-type]
    assert len(extract_entities("Alpha Beta-7 uses gamma_delta. " * 20_000)) <= MAX_MENTIONS


# -- multi-hop paths on a corpus of our own --------------------------------------------------------------

#: key -> memory. The chains (2 and 3 hops) and distractors naming the same things in other roles.
CORPUS: dict[str, tuple[str, str]] = {
    # 2 hops: instrument -> facility core -> the person who runs it
    "cryo1": ("fact", "Cryo-EM microscope — custodian: the Structural Biology core."),
    "cryo2": ("fact", "The Structural Biology core is run by Dr. Amara Okonkwo-Reyes."),
    "cryo-d1": ("fact", "The Krios autoloader — custodian: the Structural Biology core."),
    "cryo-d2": ("event", "Cryo-EM microscope downtime on Tuesday for a detector swap."),
    "cryo-d3": ("event", "The Structural Biology core ordered more grids; delivery slips to May."),
    # 2 hops, passive voice and an identifier: sequencer -> room -> building
    "seq1": ("fact", "The PX-4410 sequencer was installed in lab B2.17 after the move."),
    "seq2": ("fact", "Lab B2.17 sits inside the Hoffmann Annex."),
    "seq-d1": ("event", "PX-4410 sequencer run 88 failed QC; rerun scheduled."),
    "seq-d2": ("procedure", "To book lab B2.17, email facilities two days ahead."),
    # 2 hops, error code -> service -> on-call person (a hyphenated name in two shapes)
    "err1": ("fact", "ERR_QUOTA_EXCEEDED is raised by the billing-meter service."),
    "err2": ("fact", "On-call for billing-meter this quarter: Tomasz van den Broek."),
    "err-d1": ("event", "ERR_QUOTA_EXCEEDED spiked twice last week during the batch import."),
    "err-d2": ("fact", "ERR_RATE_LIMITED is raised by the edge-proxy service."),
    # 3 hops: service -> squad -> lead -> office
    "svc1": ("fact", "svc-ledgerd: maintained by the Kingfisher squad since the 2023 re-org."),
    "svc2": ("fact", "Kingfisher squad lead — Marguerite O'Donnell-Vance."),
    "svc3": ("fact", "Marguerite O'Donnell-Vance — based in the Lisbon office, 3rd floor."),
    "svc-d1": ("event", "svc-ledgerd p99 latency regressed after release 4.2.1."),
    "svc-d2": ("event", "The Kingfisher squad retro moved to Thursday."),
    "svc-d3": ("fact", "Kingfisher squad members: Ana Ruiz, Lars Øberg, Chen Wei."),
    # 3 hops: reading group -> quoted talk -> speaker -> hall (possessive, quotes)
    "talk1": ("fact", "The NLP reading group picked \"Sparse Retrieval at Scale\" for October."),
    "talk2": ("fact", "\"Sparse Retrieval at Scale\" will be presented by Odile Fournier."),
    "talk3": ("fact", "Odile Fournier's sessions are always held in Auditorium Blériot."),
    "talk-d1": ("event", "The NLP reading group skipped September because of the offsite."),
    "talk-d2": ("fact", "Odile Fournier reviewed the travel budget in June."),
    # noise: unrelated memories in the same styles
    "n1": ("event", "Printer on floor 2 jammed again; ticket FAC-1182 opened."),
    "n2": ("preference", "Lars Øberg prefers written agendas before any meeting."),
    "n3": ("fact", "The VPN gateway vpn-03.int rotates certificates every 90 days."),
    "n4": ("procedure", "Release checklist: tag, build, sign, publish to PyPI."),
    "n5": ("event", "Chen Wei presented the Q3 roadmap to the ML guild."),
    "n6": ("fact", "The Hoffmann Annex cafeteria closes at 15:00 on Fridays."),
}

#: (question, path memories first hop first). No answer memory shares a content word with its question.
QUESTIONS: list[tuple[str, list[str]]] = [
    ("Who can sign off a purchase for the Cryo-EM microscope?", ["cryo1", "cryo2"]),
    ("Which building houses the PX-4410 sequencer?", ["seq1", "seq2"]),
    ("Whom should I page when ERR_QUOTA_EXCEEDED fires?", ["err1", "err2"]),
    ("Where would I find the person ultimately answerable for svc-ledgerd?", ["svc1", "svc2", "svc3"]),
    ("In which hall does the NLP reading group's chosen talk take place?", ["talk1", "talk2", "talk3"]),
]

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]+")
_FUNCTION = {"the", "a", "an", "of", "for", "in", "on", "at", "to", "by", "is", "are", "was", "be", "who", "whom",
             "which", "where", "what", "when", "does", "do", "i", "can", "should", "would", "off", "out", "and"}


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _FUNCTION}


def test_the_corpus_keeps_its_promise() -> None:
    for question, path in QUESTIONS:
        answer = CORPUS[path[-1]][1]
        assert not _content_words(question) & _content_words(answer), (question, answer)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(tmp_path / "graph.db")
    yield d  # type: ignore[misc]
    d.close()


@pytest.fixture
def loaded(db: Database, settings: Settings) -> tuple[Memory, dict[str, int]]:
    mem = open_memory(db, settings)
    keys = list(CORPUS)
    ids = mem.add_many([MemoryIn(content=CORPUS[k][1], memory_type=CORPUS[k][0]) for k in keys])  # type: ignore[arg-type]
    return mem, dict(zip(keys, ids, strict=True))


@pytest.mark.parametrize(("question", "path"), QUESTIONS, ids=[q[:40] for q, _ in QUESTIONS])
def test_the_graph_follows_the_path_and_ranks_all_of_it_on_top(
    loaded: tuple[Memory, dict[str, int]], question: str, path: list[str]
) -> None:
    mem, ids = loaded
    found = [h.memory.id for h in mem.recall(question, k=5, channels={"graph"}, touch=False).hits]
    assert {ids[k] for k in path} <= set(found), [k for k, v in ids.items() if v in found]


def test_fused_recall_keeps_the_paths(loaded: tuple[Memory, dict[str, int]]) -> None:
    mem, ids = loaded
    wanted = found = 0
    for question, path in QUESTIONS:
        top = {h.memory.id for h in mem.recall(question, k=5, touch=False).hits}
        wanted += len(path)
        found += len({ids[k] for k in path} & top)
    assert found / wanted >= 0.8


def test_a_path_is_reported_with_its_links(db: Database, loaded: tuple[Memory, dict[str, int]]) -> None:
    _, ids = loaded
    result = graph_recall(db, "Where would I find the person ultimately answerable for svc-ledgerd?")
    path = next(p for p in result.paths if p.memories[-1] == ids["svc3"])
    assert path.memories == (ids["svc1"], ids["svc2"], ids["svc3"])
    assert path.via == ("kingfisher squad", "marguerite o'donnell-vance")
    assert "kingfisher squad" in result.expanded


def test_forgetting_a_memory_unlinks_it(db: Database, loaded: tuple[Memory, dict[str, int]]) -> None:
    mem, ids = loaded
    df = "SELECT df FROM memory_entities WHERE name = ?"
    assert db.scalar(df, ("billing-meter",)) == 2
    assert mem.forget(ids["err2"])
    assert db.scalar(df, ("billing-meter",)) == 1
    assert db.scalar(df, ("tomasz van den broek",)) is None  # no memory names it any more
    assert db.scalar("SELECT COUNT(*) FROM memory_cues WHERE memory_id = ?", (ids["err2"],)) == 0
    found = {h.memory.id for h in mem.recall("Whom should I page when ERR_QUOTA_EXCEEDED fires?",
                                             channels={"graph"}, touch=False).hits}
    assert ids["err2"] not in found


def test_superseded_memories_are_no_step_on_a_path(loaded: tuple[Memory, dict[str, int]]) -> None:
    mem, ids = loaded
    new = mem.correct(ids["seq2"], MemoryIn(content="Lab B2.17 sits inside the Keller Building."))
    found = [h.memory.id for h in mem.recall("Which building houses the PX-4410 sequencer?",
                                             channels={"graph"}, touch=False).hits]
    assert new in found[:5] and ids["seq2"] not in found


def test_existing_memories_are_linked_by_the_migration(tmp_path: Path, settings: Settings) -> None:
    """A store written before mentions existed gets them when it is opened by this version."""
    from colony.store._db import Database as RawDatabase
    from colony.store.migrations import MIGRATIONS, migrate

    path = tmp_path / "old.db"
    raw = RawDatabase(path)
    migrate(raw, [m for m in MIGRATIONS if m.version < 11])
    with raw.tx() as conn:
        for text in ("ERR_QUOTA_EXCEEDED is raised by the billing-meter service.",
                     "On-call for billing-meter this quarter: Tomasz van den Broek."):
            conn.execute(
                """INSERT INTO memories(content, content_hash, memory_type, confidence, verified, sensitivity,
                   source_kind) VALUES (?, ?, 'fact', 0.9, 'user_stated', 'internal', 'user')""",
                (text, text),
            )
    raw.close()
    db = open_database(path)
    try:
        assert db.scalar("SELECT df FROM memory_entities WHERE name = 'billing-meter'") == 2
        assert db.scalar("SELECT COUNT(*) FROM memory_cues") >= 0
        found = graph_recall(db, "Whom should I page when ERR_QUOTA_EXCEEDED fires?")
        assert {1, 2} <= {mid for mid, _ in found.ranked[:5]}
    finally:
        db.close()


def test_a_lower_case_phrase_of_the_question_seeds_like_a_common_word() -> None:
    """"front desk" in "Question from the front desk: …" names a topic, not the thing asked about:
    like a single common word it seeds the walk at a discount, where a name does not."""
    from colony.memory.graph import _common_word

    query = "Question from the front desk: which councillor represents Foxglove Sports Ground?"
    assert _common_word("front desk", query) and _common_word("councillor", query)
    assert not _common_word("foxglove sports ground", query)  # written capitalised: a name
    assert not _common_word("route 83", "who runs route 83?")  # an identifier
