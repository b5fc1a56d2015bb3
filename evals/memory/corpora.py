"""Every corpus of the memory eval behind one function API and one command line.

Four corpora:

- ``kestrel``: `evals.memory.generate`, the first generator (a software company, Kestrel Labs);
- ``civic``: `evals.memory.civic.generate`, the second, independent one (a city council), written
  after recall had been tuned on the first, with different templates, names and question wordings;
- ``mixed``: kestrel and civic in one store (half the memories and questions from each, shuffled
  together), so every question also faces distractors written in the other style;
- ``diary``: `evals.memory.diary.generate`, a third, held-out generator (a personal assistant's
  memory of one user's life) that no tuning ever sees: validate on it, never tune on it.

From code (what a test that holds recall to account on unseen seeds needs)::

    from evals.memory.corpora import build, evaluate, shortfalls
    memories, questions = build("civic", seed=101, memories=600, questions=100)
    report = evaluate("civic", seed=101, memories=600, questions=100)   # static embedder
    assert not shortfalls(report, margin=0.02)   # fused >= best single channel - 0.02, every type

`memories` and `questions` are totals for every generator (the Kestrel generator's own
parameters are derived from them). The command line writes a corpus directory::

    python -m evals.memory.generate --generator civic --seed 11 --out evals/memory/data_civic
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evals.memory import generate as kestrel
from evals.memory._corpus import Corpus, absent_everywhere, write
from evals.memory.civic import generate as civic
from evals.memory.diary import generate as diary
from evals.memory.run import CONFIGS, HistoryMode, Question, run_eval

if TYPE_CHECKING:
    from colony.memory.embed import Embedder
    from colony.memory.models import Channel
    from evals.memory.metrics import EvalReport

__all__ = ["DATA", "DEFAULTS", "GENERATORS", "Generator", "build", "corpus", "evaluate", "main", "mixed",
           "regenerate", "shortfalls"]

Generator = Literal["kestrel", "civic", "mixed", "diary"]
GENERATORS: tuple[Generator, ...] = ("kestrel", "civic", "mixed", "diary")
MIXED = "evals.memory.corpora.mixed"
MIXED_VERSION = "1"

#: The committed corpus of each generator.
DATA: dict[Generator, Path] = {
    "kestrel": kestrel.DEFAULT_DATA,
    "civic": civic.DEFAULT_DATA,
    "mixed": Path(__file__).resolve().parent / "data_mixed",
    "diary": diary.DEFAULT_DATA,
}
#: (seed, memories, questions) of each committed corpus. Kestrel's are its own parameters: 160
#: version-1 questions plus 20 of each version-2 type, on 2,000 version-1 memories.
DEFAULTS: dict[Generator, tuple[int, int, int]] = {"kestrel": (7, 2000, 160), "civic": (11, 2000, 210),
                                                   "mixed": (13, 3000, 240), "diary": (17, 2000, 210)}


def _kestrel_sized(seed: int, memories: int, questions: int) -> Corpus:
    """The Kestrel corpus with exactly these totals (its version-2 types take a seventh each)."""
    n_history = questions // 7
    return kestrel.generate(seed, memories - kestrel.history_memories(n_history), questions - 3 * n_history, n_history)


def mixed(seed: int = 13, n_memories: int = 3000, n_questions: int = 240) -> Corpus:
    """Half of each generator's corpus, shuffled together; questions carry their ``source``.

    The two generators share no names, so nothing one corpus asks is answered by the other by
    accident; the abstention questions are checked against every memory of both.
    """
    parts = {"kestrel": _kestrel_sized(seed, n_memories // 2, n_questions // 2),
             "civic": civic.generate(seed, n_memories - n_memories // 2, n_questions - n_questions // 2)}
    rng = random.Random(seed)
    memories = [m for part in parts.values() for m in part.memories]
    texts = [str(m["content"]) for m in memories]
    questions: list[dict[str, Any]] = []
    for source, part in parts.items():
        for q in part.questions:
            if not all(absent_everywhere(term, texts) for term in q.get("absent", [])):
                raise ValueError(f"abstention question {q['id']} names something the other corpus holds: {q['absent']}")
            questions.append({**q, "source": source})
    rng.shuffle(memories)
    rng.shuffle(questions)
    return Corpus(memories=memories, questions=questions, seed=seed, generator=MIXED, version=MIXED_VERSION,
                  parameters={"n_memories": n_memories, "n_questions": n_questions})


def corpus(generator: Generator, seed: int, memories: int, questions: int) -> Corpus:
    """The corpus of `generator` for `seed` with these totals, as raw rows."""
    if generator == "kestrel":
        return _kestrel_sized(seed, memories, questions)
    if generator == "civic":
        return civic.generate(seed, memories, questions)
    if generator == "mixed":
        return mixed(seed, memories, questions)
    if generator == "diary":
        return diary.generate(seed, memories, questions)
    raise ValueError(f"unknown generator {generator!r}; choose one of {', '.join(GENERATORS)}")


def build(generator: Generator, seed: int, memories: int, questions: int) -> tuple[list[dict[str, Any]], list[Question]]:
    """Memory rows and validated questions, ready for `evals.memory.run.run_eval`."""
    c = corpus(generator, seed, memories, questions)
    return c.memories, [Question.model_validate(q) for q in c.questions]


_REGENERATORS: dict[str, Callable[..., Corpus]] = {
    "evals.memory.generate": kestrel.generate, civic.GENERATOR: civic.generate, MIXED: mixed,
    diary.GENERATOR: diary.generate}


def regenerate(manifest: Mapping[str, Any]) -> Corpus:
    """The corpus a MANIFEST.json describes, generated again (its files must match byte for byte)."""
    return _REGENERATORS[str(manifest["generator"])](int(manifest["seed"]), **manifest["parameters"])


@lru_cache(maxsize=1)
def _static_embedder() -> Embedder:
    from colony.memory.embed import load_embedder

    return load_embedder("static")


def evaluate(generator: Generator, seed: int, memories: int, questions: int, *, embedder: Embedder | None = None,
             k: int = 5, configs: Mapping[str, frozenset[Channel]] = CONFIGS,
             history: HistoryMode = "temporal") -> EvalReport:
    """Generate, ingest into a fresh store and score: per type and per configuration (see `run`).

    `embedder` defaults to the static one, loaded once per process.
    """
    rows, qs = build(generator, seed, memories, questions)
    return run_eval(rows, qs, embedder if embedder is not None else _static_embedder(), k=k, configs=configs,
                    history=history)


def shortfalls(report: EvalReport, *, margin: float = 0.02, fused: str = "fused") -> list[str]:
    """Where `fused` recall@k falls more than `margin` below the best single channel, per type.

    Empty when fusion holds up everywhere; otherwise one readable line per failing type.
    """
    out: list[str] = []
    mine = report.configs[fused]
    singles = {name: c for name, c in report.configs.items() if name != fused}
    for qtype, score in mine.by_type.items():
        best_name, best = max(((n, c.by_type[qtype].recall) for n, c in singles.items()), key=lambda t: t[1])
        if score.recall < best - margin:
            out.append(f"{qtype}: {fused} {score.recall:.3f} < {best_name} {best:.3f} - {margin}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.memory.generate",
                                     description="Write a memory eval corpus (memories.jsonl, questions.jsonl, MANIFEST.json).")
    parser.add_argument("--generator", choices=GENERATORS, default="kestrel")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--memories", type=int, help="kestrel: version-1 memories; civic, mixed, diary: the total")
    parser.add_argument("--questions", type=int, help="kestrel: version-1 questions; civic, mixed, diary: the total")
    parser.add_argument("--history", type=int, help="kestrel only: questions of each version-2 type "
                                                     "(default: questions // 8; 0 writes a version-1 corpus)")
    parser.add_argument("--out", type=Path, help="default: the committed directory of the generator")
    args = parser.parse_args(argv)
    name: Generator = args.generator
    seed, n_memories, n_questions = DEFAULTS[name]
    seed = seed if args.seed is None else args.seed
    n_memories = n_memories if args.memories is None else args.memories
    n_questions = n_questions if args.questions is None else args.questions
    out = DATA[name] if args.out is None else args.out
    if args.history is not None and name != "kestrel":
        parser.error("--history applies to the kestrel generator only")
    try:
        if name == "kestrel":
            made = kestrel.generate(seed, n_memories, n_questions, args.history)
        elif name == "civic":
            made = civic.generate(seed, n_memories, n_questions)
        elif name == "diary":
            made = diary.generate(seed, n_memories, n_questions)
        else:
            made = mixed(seed, n_memories, n_questions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = write(made, out)
    print(f"wrote {manifest['memories']} memories and {manifest['questions']} questions "
          f"({manifest['question_types']}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
