"""The `Memory` API: store, recall, correct, forget, curate — one store per node.

Writes: embeddings and triples are computed first (outside the lock), then one transaction
writes the row, its FTS entry (trigger), its vectors and its triples, so a batch is in every
channel or in none — a process killed mid-batch leaves no half-indexed memory.

Recall: three channels (keyword BM25, semantic nearest neighbours, graph paths from the query's
entities), with one-hop graph expansion of the keyword query, fused by the calibrated model
(`_calibrated`). Every result says which channels found it and at what rank.

Every statement runs behind the `MemoryStore` seam (`colony.memory.store`): the node's SQLite
file, or the colony's PostgreSQL when ``COLONY_DATABASE_URL`` is set (`open_memory`). Everything
here — which terms to search, the graph walk, fusion, corrections, history — is the same on both.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, Field

from colony.config import Settings
from colony.errors import ColonyError
from colony.memory import curation
from colony.memory._calibrated import (
    Calibration,
    QuerySignals,
    fallback_order,
    fuse_calibrated,
    load_calibration,
)
from colony.memory._confidence import exact_first, identifiers, keyword_coverage
from colony.memory._fts import query_tokens, terms_of, to_phrases
from colony.memory._paths import mention_keys
from colony.memory._tense import asks_about_past
from colony.memory._versions import to_current
from colony.memory.embed import Embedder, EmbeddingUnavailable
from colony.memory.fusion import FRESHNESS_FLOOR, age_days, compress
from colony.memory.graph import (
    FUNCTIONAL_RELATIONS,
    INVERSE_FUNCTIONAL_RELATIONS,
    extract_triples,
    graph_recall,
)
from colony.memory.models import (
    VERIFIED_WEIGHT,
    Channel,
    ChannelHit,
    MemoryIn,
    MemoryItem,
    RecallHit,
    RecallResult,
)
from colony.memory.store import MemoryStore, as_store
from colony.store import Database, Row

__all__ = ["IngestReport", "Memory", "MemoryError", "MemoryStats", "open_memory"]

_T = TypeVar("_T")
ALL_CHANNELS: frozenset[Channel] = frozenset({"keyword", "semantic", "graph"})
CHANNEL_DEPTH = 50  # candidates each channel contributes to fusion
KEYWORD_NOISE_SHARE = 0.02  # a BM25 score below this share of the best is no match at all
COMMON_TERM_SHARE = 0.08  # a term in more than this share of memories is dropped from the query
COMMON_TERM_MIN_MEMORIES = 10_000  # below this, every term is cheap: keep them all
EMBED_BATCH = 256
MAX_QUERY_CHARS = 2000


#: Workers for the semantic and keyword channels (see `Memory.recall`).
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="colony-recall")


class MemoryError(ColonyError):
    code = "memory_error"


class IngestReport(BaseModel):
    ids: list[int]
    #: Stored without a vector (the embedding model was down); `Memory.reindex` fixes them later.
    unembedded: int = 0
    embed_error: str | None = None
    #: (new memory, existing memory) pairs whose triples contradict each other.
    flagged: list[tuple[int, int]] = Field(default_factory=list)


class MemoryStats(BaseModel):
    total: int
    active: int
    superseded: int
    expired: int
    needs_review: int
    unembedded: int
    triples: int
    entities: int
    by_type: dict[str, int]
    embedder: str | None
    vector_index: str | None


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def _sqlite_time(moment: datetime) -> str:
    """The format SQLite's strftime('%Y-%m-%dT%H:%M:%fZ') produces, so times compare as text."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    m = moment.astimezone(UTC)
    # Zero-padded by hand: strftime's %Y does not pad years below 1000 on every platform.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
            f"{m.microsecond // 1000:03d}Z")


def _row_to_item(row: Row) -> MemoryItem:
    return MemoryItem(
        id=row["id"], content=row["content"], memory_type=row["memory_type"], confidence=row["confidence"],
        verified=row["verified"], sensitivity=row["sensitivity"], expires_at=row["expires_at"],
        source_kind=row["source_kind"], source_id=row["source_id"], created_at=row["created_at"],
        last_accessed_at=row["last_accessed_at"], superseded_by=row["superseded_by"],
        needs_review=bool(row["needs_review"]),
    )


class Memory:
    """One memory over a `MemoryStore`: a node's SQLite `Database` is wrapped in the SQLite store,
    a colony's PostgreSQL comes as `colony.memory.pg_store.PgMemoryStore` (see `open_memory`)."""

    def __init__(self, db: Database | MemoryStore, settings: Settings, embedder: Embedder | None, *,
                 embedder_error: str | None = None) -> None:
        self.store = as_store(db)
        self.settings = settings
        self.embedder = embedder
        self.embedder_error = embedder_error if embedder is None else None
        if embedder is not None and self.store.vector_error:
            self.embedder, self.embedder_error = None, self.store.vector_error
        self._vec_index = (self.store.ensure_vector_index(self.embedder.name, self.embedder.dim)
                           if self.embedder else None)

    # -- writing ------------------------------------------------------------------------------
    def _embed(self, texts: Sequence[str]) -> tuple[np.ndarray | None, str | None]:
        if self.embedder is None:
            return None, self.embedder_error or "no embedding model configured"
        try:
            parts = [self.embedder.embed(texts[i:i + EMBED_BATCH]) for i in range(0, len(texts), EMBED_BATCH)]
        except EmbeddingUnavailable as exc:
            return None, str(exc)
        return np.vstack(parts).astype(np.float32), None

    def ingest(self, items: Sequence[MemoryIn], *, supersedes: int | None = None) -> IngestReport:
        """Store a batch atomically and report what could not be fully indexed."""
        if not items:
            return IngestReport(ids=[])
        vectors, embed_error = self._embed([m.content for m in items])
        triples = [extract_triples(m.content) for m in items]
        mentions = [mention_keys(m.content) for m in items]  # what each memory names: multi-hop links
        ids: list[int] = []
        flagged: list[tuple[int, int]] = []
        with self.store.write() as w:
            for i, item in enumerate(items):
                values: dict[str, Any] = item.model_dump()
                values.update(
                    content_hash=content_hash(item.content),
                    expires_at=_sqlite_time(item.expires_at) if item.expires_at else None,
                    supersedes=supersedes,
                    embedding_model=self.embedder.name if vectors is not None and self.embedder else None,
                )
                mid = w.insert_memory(values)
                ids.append(mid)
                if vectors is not None and self._vec_index and self.embedder:
                    w.insert_vector(mid, self.embedder.name, vectors[i])
                for t in triples[i]:
                    # One true object per subject (works_at), or one subject per object (owns).
                    clashes: list[int] = []
                    if t.relation in FUNCTIONAL_RELATIONS:
                        clashes += w.conflicting_triples(t.subject, t.relation, t.object)
                    if t.relation in INVERSE_FUNCTIONAL_RELATIONS:
                        clashes += w.conflicting_subjects(t.subject, t.relation, t.object)
                    for other_id in clashes:
                        if other_id not in (mid, supersedes) and (mid, other_id) not in flagged:
                            flagged.append((mid, other_id))
                    w.link_triple(t.subject, t.relation, t.object, mid)
                w.link_mentions(mid, mentions[i].entities, mentions[i].relations)
            w.flag_for_review(sorted({i for pair in flagged for i in pair}))
        return IngestReport(ids=ids, unembedded=0 if vectors is not None else len(ids),
                            embed_error=embed_error, flagged=flagged)

    def add_many(self, items: Sequence[MemoryIn]) -> list[int]:
        return self.ingest(items).ids

    def add(self, item: MemoryIn) -> int:
        return self.ingest([item]).ids[0]

    def correct(self, memory_id: int, new: MemoryIn) -> int:
        """Supersede a memory with a corrected one; the old row stays as history."""
        old = self.get(memory_id)
        if old is None:
            raise MemoryError(f"No memory {memory_id}; list them with `colony memory recall`.")
        if old.superseded_by is not None:
            raise MemoryError(
                f"Memory {memory_id} was already corrected by {old.superseded_by}; correct the latest one "
                f"(`colony memory history {memory_id}` shows the chain)."
            )
        report = self.ingest([new], supersedes=memory_id)
        new_id = report.ids[0]
        self.store.mark_superseded(memory_id, new_id)
        return new_id

    def forget(self, memory_id: int) -> bool:
        """Remove a memory from every channel. Returns False if there was no such memory."""
        with self.store.write() as w:
            return w.delete_memory(memory_id)

    def reindex(self) -> int:
        """Embed memories stored while the model was down; return how many were fixed."""
        if self.embedder is None or self._vec_index is None:
            return 0
        fixed = 0
        while True:
            rows = self.store.unembedded(512)
            if not rows:
                return fixed
            vectors, error = self._embed([r["content"] for r in rows])
            if vectors is None:
                raise MemoryError(f"Cannot embed: {error}")
            with self.store.write() as w:
                for row, vec in zip(rows, vectors, strict=True):
                    w.insert_vector(int(row["id"]), self.embedder.name, vec)
                    w.mark_embedded(int(row["id"]), self.embedder.name)
            fixed += len(rows)

    # -- reading ------------------------------------------------------------------------------
    def get(self, memory_id: int) -> MemoryItem | None:
        row = self.store.get_memories([memory_id]).get(memory_id)
        return _row_to_item(row) if row else None

    def history(self, memory_id: int) -> list[MemoryItem]:
        """The correction chain this memory belongs to, oldest first."""
        item = self.get(memory_id)
        if item is None:
            raise MemoryError(f"No memory {memory_id}.")
        first = memory_id
        for _ in range(1000):
            previous = self.store.supersedes_of(first)
            if previous is None or self.get(previous) is None:
                break
            first = previous
        chain: list[MemoryItem] = []
        current: int | None = first
        while current is not None and len(chain) < 1000:
            it = self.get(current)
            if it is None:
                break
            chain.append(it)
            current = it.superseded_by
        return chain

    def _keyword(self, query: str, phrases: Sequence[str] = ()) -> list[tuple[int, float]]:
        return self._keyword_scored(query, phrases)[0]

    def _keyword_scored(self, query: str, phrases: Sequence[str] = (), *,
                        history: bool = False) -> tuple[list[tuple[int, float]], float]:
        """BM25 ranking of the query (plus phrases), and how much of the query the best match covers."""
        terms = terms_of(query)
        skip: frozenset[str] = frozenset()
        total = self.store.memory_count()
        tokens = query_tokens(query) if query else []
        found = self.store.doc_frequencies(tokens) if tokens else {}
        df = {t: found.get(t, 0) for t in tokens}
        if total >= COMMON_TERM_MIN_MEMORIES and terms:
            common = {t for t in terms if df.get(t, 0) > COMMON_TERM_SHARE * total}
            rare_enough = [t for t in terms if t not in common]
            # Keep the rarest few if every term is common, so a query never becomes empty.
            if not rare_enough:
                common -= set(sorted(terms, key=lambda t: df.get(t, 0))[:3])
            skip = frozenset(common)
        searched = to_phrases(query, phrases, skip=skip)
        if not searched:
            return [], 0.0
        ranked = self.store.keyword_search(searched, CHANNEL_DEPTH, history=history)
        if ranked:  # matches on terms nearly every memory holds (BM25 ~ 0) are no evidence at all
            floor = ranked[0][1] * KEYWORD_NOISE_SHARE
            ranked = [hit for hit in ranked if hit[1] > floor]
        coverage = keyword_coverage(ranked[0][1], df, total) if ranked and df else 0.0
        return ranked, coverage

    def _semantic(self, query: str, *, history: bool = False) -> list[tuple[int, float]]:
        assert self.embedder is not None
        q: np.ndarray = self.embedder.embed([query])[0].astype(np.float32)
        return self.store.nearest(self.embedder.name, q, CHANNEL_DEPTH, history=history)

    def _graph(
        self, query: str, on_expanded: Callable[[list[str]], None] | None = None, *, history: bool = False
    ) -> tuple[list[tuple[int, float]], list[str], bool]:
        """Graph-channel ranking, the one-hop expansion, and whether the graph is confident.

        ``on_expanded`` gets the expansion as soon as it is known, so the caller can start the
        keyword query for it while the graph goes on ranking. ``history``: superseded memories
        may be steps and answers too, as in the other channels.
        """
        # Paths through what memories name (question entity → memory → the entities it names →
        # their memories), typed triples marking on-topic and sibling facts: `graph.graph_recall`.
        found = graph_recall(self.store, query, depth=CHANNEL_DEPTH, on_expanded=on_expanded, history=history)
        return found.ranked, found.expanded, found.confident

    def recall(self, query: str, k: int = 5, channels: set[Channel] | frozenset[Channel] | None = None,
               explain: bool = True, *, touch: bool = True, include_history: bool | None = None) -> RecallResult:
        """The ``k`` most relevant memories for ``query``, each with its channel ranks and probabilities.

        Fusion is calibrated (`colony.memory._calibrated`): each channel's evidence becomes a
        probability of relevance, a memory's relevance is their noisy-OR, and ``relevance`` /
        ``abstained`` say whether anything relevant was found at all. ``include_history``: also
        consider superseded versions (None: when the question asks about the past — "before",
        "previously", "used to"…); a past question puts an old version before its successor.
        """
        query = query.replace("\x00", " ").strip()[:MAX_QUERY_CHARS]
        result = RecallResult(query=query, hits=[])
        if not query or k <= 0:
            return result
        t0 = time.perf_counter()
        past = asks_about_past(query)
        history = past if include_history is None else include_history
        evidence = self.evidence(query, channels, history=history, result=result)
        calibration = load_calibration()
        ordered, fused, relevance = rank_evidence(evidence, calibration, history=history, past=past,
                                                  freshness_per_day=self.settings.memory_freshness_per_day)
        rows = evidence.rows
        channel_hits = {c: {mid: ChannelHit(channel=c, rank=r, score=round(float(s), 6))
                            for r, (mid, s) in enumerate(results, start=1)} for c, results in evidence.ranked.items()}
        result.hits = [RecallHit(memory=_row_to_item(rows[mid]), score=round(score, 6),
                                 channels=[channel_hits[c][mid] for c in evidence.ranked if mid in channel_hits[c]]
                                 if explain else [])
                       for mid, score, _ in ordered[:k]]
        result.relevance = round(relevance, 4)
        result.abstained = relevance < calibration.abstain_below
        result.channel_weights = {c: round(max((probs.get(c, 0.0) for _, _, probs in fused), default=0.0), 3)
                                  for c in evidence.ranked}
        result.keyword_coverage = round(evidence.signals.coverage, 3) if "keyword" in evidence.ranked else None
        result.timings_ms["total"] = round((time.perf_counter() - t0) * 1000, 3)
        if touch:
            self.store.touch_accessed([h.memory.id for h in result.hits])
        return result

    def evidence(self, query: str, channels: set[Channel] | frozenset[Channel] | None = None, *,
                 history: bool = False, result: RecallResult | None = None) -> Evidence:
        """Each channel's ranking, the memory rows and the query-level signals fusion reads.

        Public for the calibration fit (``scripts/fit_memory_fusion.py``), which must see exactly
        what `recall` sees. ``result`` (optional) collects timings, downed channels and the graph's
        expanded entities.
        """
        wanted = ALL_CHANNELS if channels is None else frozenset(channels)
        result = result if result is not None else RecallResult(query=query, hits=[])
        ranked: dict[Channel, list[tuple[int, float]]] = {}
        expanded: list[str] = []
        # The semantic channel (embedding + vector scan) and the keyword query run in worker
        # threads while the graph walk runs here; SQLite and NumPy release the GIL, so they
        # overlap on two cores. The graph's one-hop expansion then adds a small phrase query.
        semantic: Future[tuple[list[tuple[int, float]], float]] | None = None
        keyword: Future[tuple[tuple[list[tuple[int, float]], float], float]] | None = None
        coverage = 0.0
        graph_confident = False
        # The keyword and semantic channels search superseded versions too: a hit on one counts for
        # its current version (`colony.memory._versions`), unless the question is about the past and
        # sees every version as it is.
        if "semantic" in wanted:
            if self.embedder is None:
                result.channels_down["semantic"] = self.embedder_error or "no embedding model configured"
            else:
                semantic = _POOL.submit(self._timed, partial(self._semantic, history=True), query)
        if "keyword" in wanted:
            keyword = _POOL.submit(self._timed, partial(self._keyword_scored, history=True), query)
        expansion: Future[list[tuple[int, float]]] | None = None

        def start_expansion(entities: list[str]) -> None:
            nonlocal expansion
            if keyword is not None:  # one graph hop out: the neighbours' own facts, by BM25
                expansion = _POOL.submit(self._keyword, "", entities)

        if "graph" in wanted:
            t = time.perf_counter()
            ranked["graph"], expanded, graph_confident = self._graph(query, on_expanded=start_expansion,
                                                                     history=history)
            result.timings_ms["graph"] = round((time.perf_counter() - t) * 1000, 3)
        if keyword is not None:
            (ranked["keyword"], coverage), result.timings_ms["keyword"] = keyword.result()
        if semantic is not None:
            try:
                ranked["semantic"], result.timings_ms["semantic"] = semantic.result()
            except EmbeddingUnavailable as exc:
                result.channels_down["semantic"] = str(exc)
        if not history:
            redirected: list[Channel] = [c for c in ("keyword", "semantic") if c in ranked]
            for channel, current in zip(redirected, to_current(self.store, [ranked[c] for c in redirected]),
                                        strict=True):
                ranked[channel] = current
        extra = expansion.result() if expansion is not None else []
        ids = {mid for results in (*ranked.values(), extra) for mid, _ in results}
        rows = self.store.get_memories(list(ids), active_only=not history)
        exact_ids: frozenset[int] = frozenset()
        if "keyword" in ranked:
            # Memories holding the query's identifier verbatim lead the keyword ranking (a feature
            # of the calibrated model too); the graph's one-hop neighbours' facts follow its own.
            own, exact = exact_first(ranked["keyword"], rows, identifiers(query))
            merged = _append_new(own, extra)
            ranked["keyword"] = own[:exact] + [hit for hit in merged if hit not in own[:exact]]
            exact_ids = frozenset(mid for mid, _ in own[:exact])
        ranked = {c: [hit for hit in results if hit[0] in rows] for c, results in ranked.items()}
        result.expanded_entities = expanded
        semantic_top = ranked["semantic"][0][1] if ranked.get("semantic") else 0.0
        return Evidence(ranked=ranked, rows=rows, signals=QuerySignals(
            coverage=coverage, exact_ids=exact_ids, graph_confident=graph_confident,
            has_identifier=bool(identifiers(query)), semantic_top=float(semantic_top)))

    @staticmethod
    def _timed(fn: Callable[[str], _T], query: str) -> tuple[_T, float]:
        t = time.perf_counter()
        out = fn(query)
        return out, round((time.perf_counter() - t) * 1000, 3)

    # -- the agent's view -------------------------------------------------------------------
    def recall_for_context(self, query: str, *, limit: int | None = None) -> list[str]:
        """Memories for the model's context: never restricted ones, within the character budget."""
        limit = self.settings.memory_context_items if limit is None else limit
        if limit <= 0 or self.settings.memory_context_chars <= 0:
            return []
        found = self.recall(query, k=limit * 2, explain=False)
        if found.abstained:  # nothing relevant is stored: the nearest noise would only mislead the model
            return []
        texts = [h.memory.content for h in found.hits if h.memory.sensitivity != "restricted"][:limit]
        return compress(texts, self.settings.memory_context_chars)

    def record_episode(self, *, asked: str, done: Sequence[str], outcome: str, session_id: str) -> int | None:
        """Keep a turn as an episodic memory (and its triples), so later sessions can recall it."""
        if not self.settings.memory_record_episodes:
            return None
        text = f"Asked: {asked.strip()[:1500]}\nDone: {'; '.join(done)[:1500]}\nOutcome: {outcome}"
        return self.ingest([MemoryIn(content=text, memory_type="event", confidence=0.5, verified="system_verified",
                                     source_kind="episode", source_id=session_id)]).ids[0]

    # -- upkeep -----------------------------------------------------------------------------
    def curate(self) -> curation.CurationReport:
        return curation.curate(self.store, self.settings)

    def stats(self) -> MemoryStats:
        return MemoryStats(
            **self.store.counts(),
            embedder=self.embedder.name if self.embedder else None,
            vector_index=self._vec_index,
        )

    def review_queue(self, limit: int = 50) -> list[MemoryItem]:
        return [_row_to_item(r) for r in self.store.review_rows(limit)]

    def resolve_review(self, memory_id: int) -> bool:
        return self.store.clear_review(memory_id)

    def export(self) -> list[dict[str, Any]]:
        return [_row_to_item(r).model_dump(mode="json") for r in self.store.active_rows()]


class Evidence(BaseModel):
    """What fusion reads: each channel's ranking (rows that exist only), the rows, the query signals."""

    model_config = {"arbitrary_types_allowed": True}

    ranked: dict[Channel, list[tuple[int, float]]]
    rows: dict[int, Row]
    signals: QuerySignals


def rank_evidence(evidence: Evidence, calibration: Calibration, *, history: bool, past: bool,
                  freshness_per_day: float, now: datetime | None = None,
                  ) -> tuple[list[tuple[int, float, dict[str, float]]], list[tuple[int, float, dict[str, float]]], float]:
    """Recall's order from the evidence: (ordered hits, fused hits, best relevance).

    Calibrated fusion; below the fitted relevance the semantic channel's order
    (`fallback_order`); otherwise confidence, verification and freshness break near-ties; with
    history, each correction chain's versions ordered for the question. One function, so the
    calibration fit (``scripts/fit_memory_fusion.py``) scores exactly what `recall` returns.
    """
    fused, relevance = fuse_calibrated(evidence.ranked, evidence.signals, calibration)
    rows, now = evidence.rows, now or datetime.now(UTC)
    fallback = fallback_order(evidence.ranked, fused, relevance, calibration)
    if fallback is not None:
        ordered = [hit for hit in fallback if hit[0] in rows]
    else:
        ordered = sorted(((mid, p * _gentle(rows[mid], freshness_per_day, now), probs)
                          for mid, p, probs in fused if mid in rows), key=lambda t: (-t[1], t[0]))
    if history:
        ordered = order_versions(ordered, rows, past_first=past)
    return ordered, fused, relevance


def order_versions(ordered: list[tuple[int, float, dict[str, float]]], rows: Mapping[int, Row], *,
                   past_first: bool) -> list[tuple[int, float, dict[str, float]]]:
    """Within each correction chain present, the old version before its successor (a question about
    the past) or after it (any other question): the fused order otherwise stands."""
    out = list(ordered)
    position = {mid: i for i, (mid, _, _) in enumerate(out)}
    for mid in list(position):
        successor = rows[mid]["superseded_by"] if mid in rows else None
        if successor is None or successor not in position:
            continue
        i, j = position[mid], position[successor]
        if (past_first and i > j) or (not past_first and i < j):
            out[i], out[j] = out[j], out[i]
            position[out[i][0]], position[out[j][0]] = i, j
    return out


def _gentle(row: Row, freshness_per_day: float, now: datetime) -> float:
    """Confidence, verification and freshness as near-tie breakers (together ~0.75–1.15)."""
    confidence = 0.9 + 0.2 * float(row["confidence"])
    verified = VERIFIED_WEIGHT.get(str(row["verified"]), 1.0)
    fresh = max(FRESHNESS_FLOOR, math.exp(-freshness_per_day * age_days(str(row["created_at"]), now)))
    return confidence * verified * fresh


def _append_new(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> list[tuple[int, float]]:
    seen = {mid for mid, _ in a}
    return (a + [hit for hit in b if hit[0] not in seen])[:CHANNEL_DEPTH]


def open_memory(db: Database, settings: Settings) -> Memory:
    """The node's memory with the configured embedder; without one if it cannot be loaded
    (the semantic channel then reports itself down and recall runs on the other two).

    With ``COLONY_DATABASE_URL`` set, memory lives on that PostgreSQL (the process's shared pool,
    `pg_for`), where every node of the colony reads and writes the same memories; otherwise in
    the node's SQLite file ``db``.
    """
    from colony.memory.embed import load_embedder
    from colony.store.pg.shared import pg_for

    store: Database | MemoryStore = db
    pg = pg_for(settings)
    if pg is not None:
        from colony.memory.pg_store import PgMemoryStore  # psycopg is an optional extra

        store = PgMemoryStore(pg)
    if settings.memory_embedder == "none":
        return Memory(store, settings, None, embedder_error="COLONY_MEMORY_EMBEDDER=none")
    try:
        embedder = load_embedder(settings.memory_embedder)
    except EmbeddingUnavailable as exc:
        return Memory(store, settings, None, embedder_error=str(exc))
    return Memory(store, settings, embedder)
