"""The memory eval's third, held-out generator (a personal assistant's memory of one user's life).

Recall's fusion is tuned on the first two generators; this one exists so it can be validated on a
corpus no tuning has seen. It must be deterministic, regenerate its committed data byte for byte,
and keep the same promises as the others: no shared content word where only meaning or the graph
can answer, every hop of a path relevant, identifiers with near-duplicates, abstention terms absent
from every memory, knowledge updates and temporal questions consistent with the stored history.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `evals` lives next to `src`, not inside the installed package
    sys.path.insert(0, str(ROOT))

from evals.memory import _vocab as kestrel_vocab  # noqa: E402
from evals.memory._corpus import absent_everywhere, write  # noqa: E402
from evals.memory._text import content_words, shared_content_words  # noqa: E402
from evals.memory.civic import _vocab as civic_vocab  # noqa: E402
from evals.memory.corpora import DATA, DEFAULTS, build, corpus, main, regenerate  # noqa: E402
from evals.memory.diary import _vocab as diary_vocab  # noqa: E402
from evals.memory.diary._families import IDENT_KINDS, ident_kind, identifiers  # noqa: E402
from evals.memory.diary._paraphrases import PARAPHRASES  # noqa: E402
from evals.memory.diary._words import keyword_free  # noqa: E402
from evals.memory.diary.generate import GENERATOR, QUESTION_TYPES, generate  # noqa: E402
from evals.memory.run import Question  # noqa: E402

Rows = dict[str, dict[str, Any]]
FILES = ("memories.jsonl", "questions.jsonl", "MANIFEST.json")


def _read(data: Path) -> tuple[Rows, list[dict[str, Any]]]:
    memories = {m["key"]: m for m in map(json.loads, (data / "memories.jsonl").read_text().splitlines())}
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines()]
    return memories, questions


MEMORIES, QUESTIONS = _read(DATA["diary"])


def _of_type(qtype: str) -> list[dict[str, Any]]:
    return [q for q in QUESTIONS if q["type"] == qtype]


def _text(key: str) -> str:
    return str(MEMORIES[key]["content"])


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


# -- determinism and the committed data ---------------------------------------------------------
def test_same_seed_same_files_and_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write(generate(seed, 500, 80), tmp_path / name)
    for file in FILES:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()


def test_committed_corpus_is_what_its_manifest_generates(tmp_path: Path) -> None:
    manifest = json.loads((DATA["diary"] / "MANIFEST.json").read_text())
    assert manifest["generator"] == GENERATOR
    assert (manifest["seed"], manifest["parameters"]["n_memories"], manifest["parameters"]["n_questions"]) == DEFAULTS["diary"]
    write(regenerate(manifest), tmp_path)
    for file in FILES:
        assert (tmp_path / file).read_bytes() == (DATA["diary"] / file).read_bytes(), (
            f"{file} is stale: run `python -m evals.memory.generate --generator diary` and commit the data")


def test_command_line_writes_the_diary_corpus(tmp_path: Path) -> None:
    out = tmp_path / "diary"
    assert main(["--generator", "diary", "--seed", "5", "--memories", "500", "--questions", "80", "--out", str(out)]) == 0
    write(generate(5, 500, 80), tmp_path / "direct")
    for file in FILES:
        assert (out / file).read_bytes() == (tmp_path / "direct" / file).read_bytes()


@pytest.mark.parametrize(("memories", "questions"), [(300, 42), (600, 100), (1000, 200)])
def test_build_gives_exactly_the_sizes_asked(memories: int, questions: int) -> None:
    rows, qs = build("diary", 8, memories, questions)
    assert (len(rows), len(qs)) == (memories, questions)
    counts = Counter(q.type for q in qs)
    assert set(counts) == set(QUESTION_TYPES) and max(counts.values()) - min(counts.values()) <= 1
    assert corpus("diary", 8, memories, questions).memories == rows


# -- rows, counts and names -----------------------------------------------------------------------
def test_counts_keys_and_rows() -> None:
    from colony.memory.models import MemoryIn

    assert len(MEMORIES) == 2000 and len(QUESTIONS) == 210
    assert Counter(q["type"] for q in QUESTIONS) == dict.fromkeys(QUESTION_TYPES, 30)
    assert len({q["id"] for q in QUESTIONS}) == len({q["question"] for q in QUESTIONS}) == len(QUESTIONS)
    assert len({m["content"] for m in MEMORIES.values()}) == len(MEMORIES)
    assert all(key.startswith("d") for key in MEMORIES) and all(q["id"].startswith("dq") for q in QUESTIONS)
    assert {m["memory_type"] for m in MEMORIES.values()} == {"fact", "event", "preference", "summary", "procedure"}
    for row in MEMORIES.values():
        MemoryIn.model_validate({k: v for k, v in row.items() if k not in ("key", "supersedes")})
    for q in QUESTIONS:
        Question.model_validate(q)
        assert bool(q["relevant"]) == (q["type"] != "abstention"), q
        assert all(k in MEMORIES for k in q["relevant"] + q.get("superseded", [])), q


def test_names_are_shared_with_neither_other_generator() -> None:
    diary = {*diary_vocab.FIRST_NAMES, *diary_vocab.LAST_NAMES, *diary_vocab.CITIES, *diary_vocab.AREAS,
             *diary_vocab.COMPANIES, *diary_vocab.PETS, *(p[0] for p in diary_vocab.PRACTICES), *diary_vocab.CLUBS}
    others = {*kestrel_vocab.FIRST_NAMES, *kestrel_vocab.LAST_NAMES, *kestrel_vocab.TEAMS, *kestrel_vocab.ROOMS,
              *kestrel_vocab.DATACENTERS.values(), *civic_vocab.FIRST_NAMES, *civic_vocab.LAST_NAMES,
              *civic_vocab.DISTRICTS, *civic_vocab.FACILITY_NAMES, *civic_vocab.PARKS}
    assert not {n.lower() for n in diary} & {n.lower() for n in others}


# -- the retrieval types --------------------------------------------------------------------------
def test_paraphrases_share_no_content_word_with_their_memory() -> None:
    for _, memories, questions, _ in PARAPHRASES:
        for m in memories:
            for question in questions:
                assert keyword_free(question, m), (question, m)
    for q in _of_type("paraphrase"):
        assert shared_content_words(q["question"], _text(q["relevant"][0])) == [], q
        assert keyword_free(q["question"], _text(q["relevant"][0])), q  # nor a token FTS5 would match


def test_multi_hop_paths_have_two_and_three_hops_all_relevant() -> None:
    multi = _of_type("multi_hop")
    assert Counter(q["hops"] for q in multi) == {2: 15, 3: 15}
    for q in multi:
        path = [_text(k) for k in q["relevant"]]
        assert len(path) == len(set(path)) == q["hops"], q  # every memory on the path is relevant
        # The first memory names the question's entity; every later one, the answer's included,
        # shares no content word with the question: only the chain leads there.
        assert shared_content_words(q["question"], path[0]), q
        for text in path[1:]:
            assert shared_content_words(q["question"], text) == [], (q["question"], text)
            assert keyword_free(q["question"], text), (q["question"], text)
        # Consecutive memories are linked: they name a common entity.
        for a, b in pairwise(path):
            assert set(content_words(a)) & set(content_words(b)), (a, b)


def test_identifiers_are_unique_and_have_near_duplicates() -> None:
    found_in: dict[str, list[str]] = {}
    for key, m in MEMORIES.items():
        for ident in identifiers(str(m["content"])):
            found_in.setdefault(ident, []).append(key)
    assert all(len(keys) == 1 for keys in found_in.values())  # every identifier is stored once
    kinds: Counter[str] = Counter()
    for q in _of_type("identifier"):
        (ident,) = identifiers(q["question"])
        assert found_in[ident] == q["relevant"], q
        near = [other for other in found_in
                if other != ident and ident_kind(other) == ident_kind(ident) and _edit_distance(other, ident) <= 2]
        assert len(near) >= 3, (ident, near)
        kinds[ident_kind(ident)] += 1
    assert set(kinds) == set(IDENT_KINDS)


def test_plain_questions_share_keywords_with_their_memory() -> None:
    for q in _of_type("plain"):
        assert len(shared_content_words(q["question"], _text(q["relevant"][0]))) >= 2, q


# -- memory over time and abstention -------------------------------------------------------------
def test_updates_temporal_and_abstention_are_consistent() -> None:
    successor = {str(m["supersedes"]): key for key, m in MEMORIES.items() if m.get("supersedes")}
    assert len(successor) == sum(1 for m in MEMORIES.values() if m.get("supersedes")), "a memory corrected twice"

    def chain_back(key: str) -> list[str]:
        older: list[str] = []
        while MEMORIES[key].get("supersedes"):
            key = str(MEMORIES[key]["supersedes"])
            older.insert(0, key)
        return older

    for q in _of_type("knowledge_update"):
        (current,) = q["relevant"]
        assert current not in successor and q["superseded"] == chain_back(current) and q["superseded"], q
    for q in _of_type("temporal"):
        (old,) = q["relevant"]
        assert old in successor and not MEMORIES[old].get("supersedes"), q
        assert chain_back(successor[old]) == [old], q  # corrected exactly once: "before" names one version
    texts = [str(m["content"]) for m in MEMORIES.values()]
    for q in _of_type("abstention"):
        assert q["relevant"] == [] and q["absent"], q
        assert all(absent_everywhere(term, texts) for term in q["absent"]), q
        assert all(term.lower() in q["question"].lower() for term in q["absent"]), q


# -- end to end -----------------------------------------------------------------------------------
def test_end_to_end_keyword_cannot_answer_paraphrases_or_later_hops(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from evals.memory.run import main as run_main

    write(generate(3, 300, 42), tmp_path / "data")
    assert run_main(["--data", str(tmp_path / "data"), "--embedder", "static", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["memories"], report["questions"]) == (300, 42)
    configs = report["configs"]
    assert all(not c["down"] for c in configs.values()), configs
    assert set(configs["fused"]["by_type"]) == set(QUESTION_TYPES) - {"abstention"}
    assert set(configs["fused"]["by_hops"]) == {"2", "3"}
    # The corpus's promises hold against the real FTS5 index.
    assert configs["keyword"]["by_type"]["paraphrase"]["recall"] == 0.0
    for q in report["per_question"]:
        if q["type"] == "multi_hop":
            assert q["recall"]["keyword"] <= 1 / q["hops"] + 1e-9, q
