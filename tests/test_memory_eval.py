"""The memory retrieval eval's first generator (Kestrel Labs): a deterministic, well-formed
corpus, correct metrics, and an end-to-end run in which fusion beats every single channel.

The second generator, the mixed corpus and the version-2 categories (knowledge updates,
temporal questions, abstention) are tested in `test_memory_eval_corpora.py`."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `evals` lives next to `src`, not inside the installed package
    sys.path.insert(0, str(ROOT))

from evals.memory._paraphrases import PARAPHRASES  # noqa: E402
from evals.memory._text import content_words, identifiers, shared_content_words  # noqa: E402
from evals.memory.corpora import regenerate  # noqa: E402
from evals.memory.generate import (  # noqa: E402
    DEFAULT_DATA,
    QUESTION_TYPES,
    RETRIEVAL_TYPES,
    generate,
    history_memories,
    write,
)
from evals.memory.metrics import recall_at_k, reciprocal_rank  # noqa: E402
from evals.memory.run import Question, main  # noqa: E402


def _read(data: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    memories = {m["key"]: m for m in map(json.loads, (data / "memories.jsonl").read_text().splitlines())}
    questions = [json.loads(line) for line in (data / "questions.jsonl").read_text().splitlines()]
    return memories, questions


MEMORIES, QUESTIONS = _read(DEFAULT_DATA)
WORDS = {key: set(content_words(str(m["content"]))) for key, m in MEMORIES.items()}


def _of_type(qtype: str) -> list[dict[str, Any]]:
    return [q for q in QUESTIONS if q["type"] == qtype]


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _kind(ident: str) -> str:
    for kind, pattern in (("pin", r"==") , ("host", r"^[a-z]+-\d{2}\."), ("error", r"^E\d{4}$")):
        if re.search(pattern, ident):
            return kind
    return "ticket:" + ident.split("-")[0]


# -- the generator ----------------------------------------------------------------------------
def test_same_seed_same_files_and_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        write(generate(seed, 300, 40), tmp_path / name)
    for file in ("memories.jsonl", "questions.jsonl", "MANIFEST.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert (tmp_path / "a" / file).read_bytes() != (tmp_path / "c" / file).read_bytes()


def test_committed_data_is_what_the_default_seed_generates(tmp_path: Path) -> None:
    manifest = json.loads((DEFAULT_DATA / "MANIFEST.json").read_text())
    assert manifest["generator_version"] == "2"
    write(regenerate(manifest), tmp_path)
    for file in ("memories.jsonl", "questions.jsonl", "MANIFEST.json"):
        assert (tmp_path / file).read_bytes() == (DEFAULT_DATA / file).read_bytes(), (
            f"{file} is stale: run `python -m evals.memory.generate` and commit evals/memory/data"
        )


def test_version_2_keeps_every_version_1_row() -> None:
    # The new categories are added after the version-1 corpus from the same random stream, so
    # scores on the old question types stay comparable across the version bump.
    old, new = generate(7, 400, 60, n_history=0), generate(7, 400, 60)
    new_memories = {m["key"]: m for m in new.memories}
    new_questions = {q["id"]: q for q in new.questions}
    assert all(new_memories[m["key"]] == m for m in old.memories)
    assert all(new_questions[q["id"]] == q for q in old.questions)
    assert len(new.memories) == len(old.memories) + history_memories(60 // 8)
    assert [m["key"] for m in new.memories if m["key"] in {o["key"] for o in old.memories}] == [m["key"] for m in old.memories]


def test_counts_and_type_minimums() -> None:
    manifest = json.loads((DEFAULT_DATA / "MANIFEST.json").read_text())
    assert len(MEMORIES) == manifest["memories"] >= 2000
    assert len(QUESTIONS) == manifest["questions"] >= 150
    counts = Counter(q["type"] for q in QUESTIONS)
    assert set(counts) == set(QUESTION_TYPES)
    assert min(counts[t] for t in RETRIEVAL_TYPES) >= 30
    assert min(counts[t] for t in QUESTION_TYPES if t not in RETRIEVAL_TYPES) >= 20
    assert manifest["question_types"] == dict(sorted(counts.items()))
    assert len({q["id"] for q in QUESTIONS}) == len(QUESTIONS)
    assert len({q["question"] for q in QUESTIONS}) == len(QUESTIONS)
    assert len({m["content"] for m in MEMORIES.values()}) == len(MEMORIES)


def test_every_row_is_a_memory_and_every_relevant_key_exists() -> None:
    from colony.memory.models import MemoryIn

    for row in MEMORIES.values():
        MemoryIn.model_validate({k: v for k, v in row.items() if k not in ("key", "supersedes")})
        assert row.get("supersedes", "m00001") in MEMORIES, row
    for q in QUESTIONS:
        Question.model_validate(q)
        assert bool(q["relevant"]) == (q["type"] != "abstention"), q
        assert all(key in MEMORIES for key in q["relevant"] + q.get("superseded", [])), q


def test_multi_hop_questions_share_no_content_word_with_their_answers() -> None:
    for q in _of_type("multi_hop"):
        texts = [str(MEMORIES[k]["content"]) for k in q["relevant"]]
        for text in texts:
            assert shared_content_words(str(q["question"]), text) == [], (q["question"], text)
        # ...but the chain exists: another memory names both the question's entity and an answer's.
        asked = set(content_words(str(q["question"])))
        answers = {w for t in texts for w in content_words(t)}
        bridges = [key for key, words in WORDS.items()
                   if key not in q["relevant"] and words & asked and words & answers]
        assert bridges, q


def test_paraphrases_share_no_content_word_with_their_memory() -> None:
    for _, memories, questions, _ in PARAPHRASES:
        for m in memories:
            for question in questions:
                assert shared_content_words(question, m) == [], (question, m)
    for q in _of_type("paraphrase"):
        assert shared_content_words(str(q["question"]), str(MEMORIES[q["relevant"][0]]["content"])) == []


def test_plain_questions_share_keywords_with_their_memory() -> None:
    for q in _of_type("plain"):
        assert len(shared_content_words(str(q["question"]), str(MEMORIES[q["relevant"][0]]["content"]))) >= 2, q


def test_identifiers_are_unique_and_have_near_duplicates() -> None:
    found_in: dict[str, list[str]] = {}
    for key, m in MEMORIES.items():
        for ident in identifiers(str(m["content"])):
            found_in.setdefault(ident, []).append(key)
    kinds: Counter[str] = Counter()
    for q in _of_type("identifier"):
        (ident,) = identifiers(str(q["question"]))
        assert found_in[ident] == q["relevant"], q  # in exactly one memory: the relevant one
        assert len(content_words(str(q["question"]))) <= 6, q  # the identifier plus little else
        near = [other for other in found_in
                if other != ident and _kind(other) == _kind(ident) and _edit_distance(other, ident) <= 2]
        assert len(near) >= 3, (ident, near)
        kinds[_kind(ident)] += 1
    assert {"pin", "host", "error", "ticket:INC"} <= set(kinds)


# -- the metrics ------------------------------------------------------------------------------
def test_recall_at_k() -> None:
    assert recall_at_k([4, 2, 9], [2], 5) == 1.0
    assert recall_at_k([4, 2, 9], [2, 7], 5) == 0.5
    assert recall_at_k([1, 2, 3, 4, 5, 6], [6], 5) == 0.0
    assert recall_at_k([1, 1, 1], [1, 3], 2) == 0.5
    assert recall_at_k([], [3], 5) == 0.0
    with pytest.raises(ValueError, match="relevant"):
        recall_at_k([1], [], 5)


def test_reciprocal_rank() -> None:
    assert reciprocal_rank([7, 8, 9], [7], 5) == 1.0
    assert reciprocal_rank([7, 8, 9], [9, 8], 5) == 0.5
    assert reciprocal_rank([1, 2, 3, 4, 5, 6], [6], 5) == 0.0
    assert reciprocal_rank([1, 2, 3, 4], [4], 5) == 0.25
    assert reciprocal_rank([], [4], 5) == 0.0


# -- the runner -------------------------------------------------------------------------------
def test_run_fails_clearly_without_the_memory_api(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "colony.memory", None)  # import fails as if the package were absent
    assert main(["--data", str(DEFAULT_DATA)]) == 2
    assert "Memory API" in capsys.readouterr().err


def test_end_to_end_fusion_beats_every_single_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(generate(7, 200, 40), tmp_path / "data")
    assert main(["--data", str(tmp_path / "data"), "--embedder", "static", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["memories"] == 200 + history_memories(40 // 8)
    assert report["questions"] == 40 + 3 * (40 // 8)
    configs = report["configs"]
    assert set(configs) == {"keyword", "semantic", "graph", "fused"}
    assert all(not c["down"] for c in configs.values()), configs
    fused = configs["fused"]["overall"]["recall"]
    for channel in ("keyword", "semantic", "graph"):
        assert fused >= configs[channel]["overall"]["recall"], (channel, configs)
    # The eval's promise holds against the real FTS5 index: shared words cannot answer these types...
    assert configs["keyword"]["by_type"]["multi_hop"]["recall"] == 0.0
    assert configs["keyword"]["by_type"]["paraphrase"]["recall"] == 0.0
    # ...and near-duplicate identifiers defeat meaning but not exact terms.
    assert configs["keyword"]["by_type"]["identifier"]["recall"] > configs["semantic"]["by_type"]["identifier"]["recall"]


def test_fusion_is_about_as_good_as_the_best_channel_on_every_question_type() -> None:
    # The committed set with the default (static) embedder: fused recall@5 beats every channel
    # overall and is never more than 0.10 behind the best channel on a type (the calibrated fusion
    # is not tuned on this set; the rule — best − 0.02 over held-out seeds of both
    # generators — is tests/test_memory_generalisation.py, not met yet on two types).
    from evals.memory.run import load_corpus, run_eval

    from colony.memory.embed import load_embedder

    memories, questions = load_corpus(DEFAULT_DATA)
    report = run_eval(memories, questions, load_embedder("static"))
    fused = report.configs["fused"]
    for channel in ("keyword", "semantic", "graph"):
        alone = report.configs[channel]
        assert fused.overall.recall >= alone.overall.recall, channel
        for qtype, score in alone.by_type.items():
            assert fused.by_type[qtype].recall >= score.recall - 0.10, (channel, qtype, fused.by_type[qtype], score)
    assert fused.overall.recall > max(report.configs[c].overall.recall for c in ("keyword", "semantic", "graph"))
