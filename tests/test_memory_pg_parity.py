"""Recall quality on PostgreSQL matches SQLite's: the retrieval eval on both engines.

The fusion calibration (``fusion-v2.json``) was fitted on SQLite's channel scores, so PostgreSQL
must hand fusion the same evidence. Two checks, on the committed corpus of each generator
(kestrel ``data/`` seed 7, civic ``data_civic/`` seed 11, diary ``data_diary/`` seed 17, at
their committed sizes, the real static embedding model):

- the keyword channel (FTS5's BM25 recomputed from PostgreSQL's term statistics) and the graph
  channel rank every question's memories identically on both engines, scores included;
- fused recall@5 on PostgreSQL is at least SQLite's − 0.02 for every question type. The semantic
  channel may differ: pgvector's HNSW index stands in for SQLite's binary codes re-ranked
  exactly, and the two approximate the exact nearest neighbours differently.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.memory import Memory
from colony.memory.embed import Embedder, load_embedder
from colony.memory.pg_store import PgMemoryStore
from colony.store import open_database
from colony.store.pg import open_pg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `evals` lives next to `src`, not inside the installed package
    sys.path.insert(0, str(ROOT))

from evals.memory.run import CONFIGS, ingest, load_corpus, run_eval  # noqa: E402

DATA = ROOT / "evals" / "memory"
CORPORA = {"kestrel": DATA / "data", "civic": DATA / "data_civic", "diary": DATA / "data_diary"}
MARGIN = 0.02


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("static")


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_fused_recall_on_postgres_is_never_worse_than_on_sqlite(corpus: str, pg_url: str, embedder: Embedder) -> None:
    memories, questions = load_corpus(CORPORA[corpus])
    fused = {"fused": CONFIGS["fused"]}
    sqlite = run_eval(memories, questions, embedder, configs=fused).configs["fused"]
    postgres = run_eval(memories, questions, embedder, configs=fused, database_url=pg_url).configs["fused"]
    table = {t: (round(s.recall, 3), round(postgres.by_type[t].recall, 3)) for t, s in sqlite.by_type.items()}
    print(f"\n{corpus} fused recall@5 (sqlite, postgres): {table}")
    worse = {t: pair for t, pair in table.items() if pair[1] < pair[0] - MARGIN}
    assert worse == {}, f"{corpus}: PostgreSQL's fused recall@5 trails SQLite's by more than {MARGIN}: {worse}"
    assert postgres.overall.recall >= sqlite.overall.recall - MARGIN
    if sqlite.abstention is not None and postgres.abstention is not None:
        assert (postgres.abstention.accuracy or 0.0) >= (sqlite.abstention.accuracy or 0.0) - MARGIN


@pytest.fixture
def both(tmp_path: Path, pg_url: str, embedder: Embedder) -> Iterator[tuple[Memory, Memory]]:
    settings = Settings(home=tmp_path, workspace=tmp_path)
    db = open_database(tmp_path / "memory.db")
    pg = open_pg(pg_url, max_size=4)
    yield Memory(db, settings, embedder), Memory(PgMemoryStore(pg), settings, embedder)
    db.close()
    pg.close()


def test_keyword_and_graph_channels_rank_identically(both: tuple[Memory, Memory]) -> None:
    sqlite, postgres = both
    memories, questions = load_corpus(CORPORA["kestrel"])
    assert ingest(sqlite, memories) == ingest(postgres, memories)
    for q in questions:
        history = q.type == "temporal"
        lite = sqlite._keyword_scored(q.question, history=history)
        pg = postgres._keyword_scored(q.question, history=history)
        assert [mid for mid, _ in lite[0]] == [mid for mid, _ in pg[0]], q.question
        assert [s for _, s in pg[0]] == pytest.approx([s for _, s in lite[0]], rel=1e-9, abs=1e-12), q.question
        assert pg[1] == pytest.approx(lite[1], rel=1e-9, abs=1e-12)  # keyword coverage, a calibration feature
        assert sqlite._graph(q.question, history=history)[0] == postgres._graph(q.question, history=history)[0]
