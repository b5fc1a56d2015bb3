"""The memory eval's second generator (Brackenford's council), the mixed corpus, and the
categories both generators share since issue 18: knowledge updates, temporal questions and
abstention. The corpora must be deterministic, keep their promises (no shared content word where
only meaning or the graph can answer; every hop of a path relevant; abstention terms absent from
every memory), and the runner must record corrections through the store and score abstention
whether or not the Memory API reports it."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `evals` lives next to `src`, not inside the installed package
    sys.path.insert(0, str(ROOT))

from evals.memory import _vocab as kestrel_vocab  # noqa: E402
from evals.memory._corpus import absent_everywhere, write  # noqa: E402
from evals.memory._text import content_words, shared_content_words  # noqa: E402
from evals.memory.civic import _vocab as civic_vocab  # noqa: E402
from evals.memory.civic._families import identifiers  # noqa: E402
from evals.memory.civic._paraphrases import PARAPHRASES  # noqa: E402
from evals.memory.civic.generate import QUESTION_TYPES  # noqa: E402
from evals.memory.corpora import DATA, GENERATORS, Generator, build, corpus, regenerate, shortfalls  # noqa: E402
from evals.memory.metrics import QuestionResult, auc, summarise  # noqa: E402
from evals.memory.run import Question, _stale_first, evaluate, ingest, main  # noqa: E402

Rows = dict[str, dict[str, Any]]


def _read(data: Path) -> tuple[Rows, list[dict[str, Any]]]:
    memories = {m["key"]: m for m in map(json.loads, (data / "memories.jsonl").read_text().splitlines())}
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines()]
    return memories, questions


CORPORA = {name: _read(DATA[name]) for name in GENERATORS}
CIVIC_MEMORIES, CIVIC_QUESTIONS = CORPORA["civic"]


def _of_type(questions: list[dict[str, Any]], qtype: str) -> list[dict[str, Any]]:
    return [q for q in questions if q["type"] == qtype]


def _text(memories: Rows, key: str) -> str:
    return str(memories[key]["content"])


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _kind(ident: str) -> str:
    for kind, pattern in (("planning", r"^\d{2}/\d{5}/"), ("column", r"^[A-Z]{2}/"), ("foi", r"^FOI-"),
                          ("work_order", r"^\d{6}$"), ("fleet", r"^\d{4}$")):
        if re.search(pattern, ident):
            return kind
    raise AssertionError(ident)


# -- determinism and the committed data ---------------------------------------------------------
@pytest.mark.parametrize("generator", GENERATORS)
def test_same_seed_same_files_and_other_seed_differs(generator: Generator, tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write(corpus(generator, seed, 500, 80), tmp_path / name)
    for file in ("memories.jsonl", "questions.jsonl", "MANIFEST.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()


@pytest.mark.parametrize("generator", GENERATORS)
def test_committed_corpus_is_what_its_manifest_generates(generator: Generator, tmp_path: Path) -> None:
    manifest = json.loads((DATA[generator] / "MANIFEST.json").read_text())
    write(regenerate(manifest), tmp_path)
    for file in ("memories.jsonl", "questions.jsonl", "MANIFEST.json"):
        assert (tmp_path / file).read_bytes() == (DATA[generator] / file).read_bytes(), (
            f"{file} is stale: run `python -m evals.memory.generate --generator {generator}` and commit the data"
        )


@pytest.mark.parametrize("generator", GENERATORS)
def test_build_gives_exactly_the_sizes_asked(generator: Generator) -> None:
    memories, questions = build(generator, 8, 600, 100)
    assert (len(memories), len(questions)) == (600, 100)
    assert set(Counter(q.type for q in questions)) == set(QUESTION_TYPES)
    assert min(Counter(q.type for q in questions).values()) >= 12


# -- the second generator ------------------------------------------------------------------------
def test_civic_counts_keys_and_rows() -> None:
    from colony.memory.models import MemoryIn

    manifest = json.loads((DATA["civic"] / "MANIFEST.json").read_text())
    assert manifest["generator"] == "evals.memory.civic"
    assert len(CIVIC_MEMORIES) == manifest["memories"] >= 2000
    counts = Counter(q["type"] for q in CIVIC_QUESTIONS)
    assert set(counts) == set(QUESTION_TYPES)
    assert min(counts.values()) >= 30
    assert len({q["id"] for q in CIVIC_QUESTIONS}) == len({q["question"] for q in CIVIC_QUESTIONS}) == len(CIVIC_QUESTIONS)
    assert len({m["content"] for m in CIVIC_MEMORIES.values()}) == len(CIVIC_MEMORIES)
    assert all(key.startswith("c") for key in CIVIC_MEMORIES)
    for row in CIVIC_MEMORIES.values():
        MemoryIn.model_validate({k: v for k, v in row.items() if k not in ("key", "supersedes")})
    for q in CIVIC_QUESTIONS:
        Question.model_validate(q)
        assert bool(q["relevant"]) == (q["type"] != "abstention"), q
        assert all(k in CIVIC_MEMORIES for k in q["relevant"] + q.get("superseded", [])), q


def test_the_generators_share_no_names() -> None:
    civic_names = {*civic_vocab.FIRST_NAMES, *civic_vocab.LAST_NAMES, *civic_vocab.DISTRICTS, *civic_vocab.FACILITY_NAMES}
    kestrel_names = {*kestrel_vocab.FIRST_NAMES, *kestrel_vocab.LAST_NAMES, *kestrel_vocab.TEAMS, *kestrel_vocab.ROOMS,
                     *kestrel_vocab.DATACENTERS.values()}
    assert not civic_names & kestrel_names


def test_civic_paraphrases_share_no_content_word_with_their_memory() -> None:
    for _, memories, questions, _ in PARAPHRASES:
        for m in memories:
            for question in questions:
                assert shared_content_words(question, m) == [], (question, m)
    for q in _of_type(CIVIC_QUESTIONS, "paraphrase"):
        assert shared_content_words(q["question"], _text(CIVIC_MEMORIES, q["relevant"][0])) == [], q


def test_civic_multi_hop_paths_have_two_and_three_hops_all_relevant() -> None:
    multi = _of_type(CIVIC_QUESTIONS, "multi_hop")
    hops = Counter(q["hops"] for q in multi)
    assert set(hops) == {2, 3} and min(hops.values()) >= 10, hops
    for q in multi:
        path = [_text(CIVIC_MEMORIES, k) for k in q["relevant"]]
        assert len(path) == q["hops"], q  # every memory on the path is relevant
        # The first memory names the question's entity; every later one, the answer's included,
        # shares no content word with the question: only the chain leads there.
        assert shared_content_words(q["question"], path[0]), q
        for text in path[1:]:
            assert shared_content_words(q["question"], text) == [], (q["question"], text)
        # Consecutive memories are linked: they name a common entity.
        for a, b in pairwise(path):
            assert set(content_words(a)) & set(content_words(b)), (a, b)


def test_civic_identifiers_are_unique_and_have_near_duplicates() -> None:
    found_in: dict[str, list[str]] = {}
    for key, m in CIVIC_MEMORIES.items():
        for ident in identifiers(str(m["content"])):
            found_in.setdefault(ident, []).append(key)
    kinds: Counter[str] = Counter()
    for q in _of_type(CIVIC_QUESTIONS, "identifier"):
        (ident,) = identifiers(q["question"])
        assert found_in[ident] == q["relevant"], q
        near = [other for other in found_in
                if other != ident and _kind(other) == _kind(ident) and _edit_distance(other, ident) <= 3]
        assert len(near) >= 3, (ident, near)
        kinds[_kind(ident)] += 1
    assert set(kinds) == {"planning", "work_order", "column", "foi", "fleet"}


def test_civic_plain_questions_share_keywords_with_their_memory() -> None:
    for q in _of_type(CIVIC_QUESTIONS, "plain"):
        assert len(shared_content_words(q["question"], _text(CIVIC_MEMORIES, q["relevant"][0]))) >= 2, q


# -- knowledge updates, temporal questions and abstention, in every corpus -------------------------
@pytest.mark.parametrize("generator", GENERATORS)
def test_history_categories_are_present_and_consistent(generator: Generator) -> None:
    memories, questions = CORPORA[generator]
    counts = Counter(q["type"] for q in questions)
    assert min(counts["knowledge_update"], counts["temporal"], counts["abstention"]) >= 20, counts
    successor = {str(m["supersedes"]): key for key, m in memories.items() if m.get("supersedes")}
    assert len(successor) == sum(1 for m in memories.values() if m.get("supersedes")), "a memory corrected twice"

    def chain_back(key: str) -> list[str]:
        older: list[str] = []
        while memories[key].get("supersedes"):
            key = str(memories[key]["supersedes"])
            older.insert(0, key)
        return older

    for q in _of_type(questions, "knowledge_update"):
        (current,) = q["relevant"]
        assert current not in successor, q  # the latest version...
        assert q["superseded"] == chain_back(current) and q["superseded"], q  # ...of a corrected fact
    for q in _of_type(questions, "temporal"):
        (old,) = q["relevant"]
        assert old in successor and not memories[old].get("supersedes"), q  # the original, since corrected
        assert chain_back(successor[old]) == [old], q  # corrected exactly once: "before" names one version
    texts = [str(m["content"]) for m in memories.values()]
    for q in _of_type(questions, "abstention"):
        assert q["relevant"] == [] and q["absent"], q
        assert all(absent_everywhere(term, texts) for term in q["absent"]), q
        assert all(term.lower() in q["question"].lower() for term in q["absent"]), q


def test_mixed_corpus_holds_both_generators() -> None:
    memories, questions = CORPORA["mixed"]
    sources = Counter(q["source"] for q in questions)
    assert set(sources) == {"kestrel", "civic"} and abs(sources["kestrel"] - sources["civic"]) <= 1
    prefixes = Counter(key[0] for key in memories)
    assert set(prefixes) == {"m", "c"} and abs(prefixes["m"] - prefixes["c"]) <= 1
    assert all(q["id"].startswith("cq" if q["source"] == "civic" else "q") for q in questions)
    assert set(Counter(q["type"] for q in questions)) == set(QUESTION_TYPES)


# -- the runner -----------------------------------------------------------------------------------
def test_ingest_records_corrections_through_the_store(tmp_path: Path) -> None:
    from colony.config import Settings
    from colony.memory import Memory
    from colony.store import open_database

    rows = corpus("civic", 3, 300, 42).memories
    corrections = [r for r in rows if r.get("supersedes")]
    assert corrections
    settings = Settings(home=tmp_path, workspace=tmp_path)
    db = open_database(settings.db_path)
    try:
        memory = Memory(db, settings, None)
        key_to_id = ingest(memory, rows, batch=50)
        assert len(key_to_id) == len(rows)
        for row in corrections:
            old = memory.get(key_to_id[str(row["supersedes"])])
            assert old is not None and old.superseded_by == key_to_id[str(row["key"])], row
    finally:
        db.close()


def test_runner_marks_abstention_and_history_unavailable_on_an_older_api(monkeypatch: pytest.MonkeyPatch) -> None:
    # An older Memory API: recall has neither include_history nor touch, and its result neither
    # `abstained` nor `relevance`. The runner must say so rather than crash.
    from pydantic import BaseModel

    import colony.memory.models as models

    class OldResult(BaseModel):
        query: str
        hits: list[Any] = []
        channels_down: dict[str, str] = {}

    class OldMemory:
        def recall(self, query: str, k: int = 5, channels: Any = None, explain: bool = True) -> OldResult:
            return OldResult(query=query)

    monkeypatch.setattr(models, "RecallResult", OldResult)
    questions = [Question(id="1", type="temporal", question="Where was it before?", relevant=["a"]),
                 Question(id="2", type="abstention", question="Capital of Mongolia?", relevant=[])]
    report = evaluate(cast(Any, OldMemory()), questions, {"a": 1})
    fused = report.configs["fused"]
    assert fused.abstention is not None and not fused.abstention.available
    assert fused.by_type["temporal"].recall == 0.0
    assert any("abstained" in note for note in report.notes)
    assert any("include_history" in note for note in report.notes)


def test_abstention_scores_and_auc() -> None:
    def row(qid: str, qtype: str, abstained: bool, relevance: float, found: float = 1.0) -> QuestionResult:
        answerable = qtype != "abstention"
        return QuestionResult(id=qid, type=qtype, recall={"fused": found} if answerable else {},
                              first_rank={"fused": 1 if found else None} if answerable else {}, answerable=answerable,
                              abstained={"fused": abstained}, relevance={"fused": relevance})

    rows = [row("1", "plain", False, 0.9), row("2", "plain", True, 0.2, 0.0), row("3", "paraphrase", False, 0.6),
            row("4", "abstention", True, 0.1), row("5", "abstention", False, 0.7)]
    report = summarise(rows, ["fused"], {"fused": [1.0] * 5}, {}, k=5, memories=10)
    score = report.configs["fused"].abstention
    assert score is not None and score.available
    assert (score.precision, score.recall, score.accuracy) == (0.5, 0.5, 0.6)
    assert score.false_abstention == round(1 / 3, 4)
    assert score.false_abstention_by_type == {"paraphrase": 0.0, "plain": 0.5}
    assert score.relevance_auc == round(auc([0.9, 0.2, 0.6], [0.1, 0.7]) or 0.0, 4) == 0.6667
    assert report.configs["fused"].overall.n == 3  # abstention questions carry no recall@k
    assert auc([1.0], []) is None and auc([0.5], [0.5]) == 0.5


def test_stale_first() -> None:
    assert _stale_first([5, 9, 7], current=[9], stale=[5])
    assert not _stale_first([9, 5], current=[9], stale=[5])
    assert _stale_first([5, 1], current=[9], stale=[5])  # the stale version where the current one is missing
    assert not _stale_first([1, 2], current=[9], stale=[5])


def test_shortfalls_name_the_types_where_fusion_loses(tmp_path: Path) -> None:
    from evals.memory.metrics import ConfigResult, EvalReport, Score

    def config(**recalls: float) -> ConfigResult:
        return ConfigResult(overall=Score(recall=0, mrr=0, n=1), latency_ms_p50=0, latency_ms_p95=0,
                            by_type={t: Score(recall=r, mrr=r, n=10) for t, r in recalls.items()})

    report = EvalReport(k=5, memories=1, questions=1, per_question=[], configs={
        "keyword": config(plain=0.9, paraphrase=0.0), "semantic": config(plain=0.8, paraphrase=0.5),
        "fused": config(plain=0.89, paraphrase=0.4)})
    assert shortfalls(report) == ["paraphrase: fused 0.400 < semantic 0.500 - 0.02"]
    assert shortfalls(report, margin=0.2) == []


def test_end_to_end_on_the_second_generator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(corpus("civic", 3, 300, 42), tmp_path / "data")
    assert main(["--data", str(tmp_path / "data"), "--embedder", "static", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["memories"], report["questions"]) == (300, 42)
    configs = report["configs"]
    assert all(not c["down"] for c in configs.values()), configs
    assert set(configs["fused"]["by_type"]) == set(QUESTION_TYPES) - {"abstention"}
    assert set(configs["fused"]["by_hops"]) == {"2", "3"}
    assert configs["fused"]["abstention"]["unanswerable"] == 6
    # The corpus's promises hold against the real FTS5 index: shared words cannot find a
    # paraphrase, nor any memory of a multi-hop path but the first.
    assert configs["keyword"]["by_type"]["paraphrase"]["recall"] == 0.0
    for q in report["per_question"]:
        if q["type"] == "multi_hop":
            assert q["recall"]["keyword"] <= 1 / q["hops"] + 1e-9, q
