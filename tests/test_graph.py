"""The associative graph channel: triple extraction, query entities, Personalized PageRank, bounded BFS."""

from __future__ import annotations

import random
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from colony.memory import graph
from colony.memory.graph import (
    FUNCTIONAL_RELATIONS,
    INVERSE_FUNCTIONAL_RELATIONS,
    MAX_ENTITY_WORDS,
    RELATIONS,
    Edge,
    Triple,
    bounded_neighbourhood,
    extract_triples,
    normalize_entity,
    personalized_pagerank,
    query_entities,
)

T = tuple[str, str, str]

# sentence -> the triples it states, in order. The second half of the table is sentences that
# state nothing we can trust: negations, questions, agentless passives, pronoun subjects, nouns
# that look like verbs.
CASES: list[tuple[str, list[T]]] = [
    ("Jeff uses Rust.", [("jeff", "uses", "rust")]),
    ("Rust has Tokio.", [("rust", "has", "tokio")]),
    ("Rust is a language.", [("rust", "is_a", "language")]),
    ("Rust is fast.", [("rust", "is", "fast")]),
    ("Jeff was a teacher.", [("jeff", "was_a", "teacher")]),
    ("The billing service depends on Redis.", [("billing service", "depends_on", "redis")]),
    ("Colony runs on Linux.", [("colony", "runs_on", "linux")]),
    ("The app requires Python 3.11.", [("app", "requires", "python 3.11")]),
    ("The scheduler needs a lock.", [("scheduler", "needs", "lock")]),
    ("The payment service calls the auth service.", [("payment service", "calls", "auth service")]),
    ("src/app.py imports utils.", [("src/app.py", "imports", "utils")]),
    ("Our team owns the billing pipeline.", [("team", "owns", "billing pipeline")]),
    ("Tokio is part of the Rust ecosystem.", [("tokio", "part_of", "rust ecosystem")]),
    ("The archive contains logs.", [("archive", "contains", "logs")]),
    ("The plan includes a migration.", [("plan", "includes", "migration")]),
    ("The server is located in Frankfurt.", [("server", "located_in", "frankfurt")]),
    ("Jeff lives in Berlin.", [("jeff", "lives_in", "berlin")]),
    ("Jeff works at Acme in Berlin.", [("jeff", "works_at", "acme")]),
    ("Ann works on the parser.", [("ann", "works_on", "parser")]),
    ("Ann works with Bob.", [("ann", "works_with", "bob")]),
    ("Ann manages the platform team.", [("ann", "manages", "platform team")]),
    ("Jeff reports to Ann.", [("jeff", "reports_to", "ann")]),
    ("The frontend is written in TypeScript.", [("frontend", "written_in", "typescript")]),
    ("The CLI is built with Typer.", [("cli", "built_with", "typer")]),
    ("Slow queries cause timeouts.", [("slow queries", "causes", "timeouts")]),
    ("The outage led to a rollback.", [("outage", "leads_to", "rollback")]),
    ("Jeff prefers dark mode.", [("jeff", "prefers", "dark mode")]),
    ("Jeff likes Rust.", [("jeff", "likes", "rust")]),
    ("Jeff dislikes meetings.", [("jeff", "dislikes", "meetings")]),
    ("Jeff knows Ann.", [("jeff", "knows", "ann")]),
    ("Alice is married to Bob.", [("alice", "married_to", "bob")]),
    ("Jeff was born in Paris in 1990.", [("jeff", "born_in", "paris")]),
    ("The cache stores sessions.", [("cache", "stores", "sessions")]),
    ("The worker reads the queue.", [("worker", "reads", "queue")]),
    ("The exporter writes Parquet files.", [("exporter", "writes", "parquet files")]),
    ("Service A connects to the broker.", []),  # "a connects" reads as a noun after an article
    ("The gateway connects to db-07.eu-west over TLS.", [("gateway", "connects_to", "db-07.eu-west")]),
    ("The API is hosted on AWS.", [("api", "hosted_on", "aws")]),
    ("The app is deployed to Kubernetes.", [("app", "deployed_to", "kubernetes")]),
    ("PR #512 supersedes PR #498.", [("pr #512", "supersedes", "pr #498")]),
    ("The ticket INC-1 blocks the release.", [("ticket inc-1", "blocks", "release")]),
    ("Jeff is a member of the platform team.", [("jeff", "member_of", "platform team")]),
    ("Bob is the owner of the repo.", [("bob", "owns", "repo")]),
    ("Redis is used for caching.", [("redis", "used_for", "caching")]),
    ("Jeff is using Rust.", [("jeff", "uses", "rust")]),
    ("Jeff will use Rust.", [("jeff", "uses", "rust")]),
    ("Jeff has used Rust for years.", [("jeff", "uses", "rust")]),
    ("Jeff also uses Emacs.", [("jeff", "uses", "emacs")]),
    ("I prefer dark mode.", [("user", "prefers", "dark mode")]),
    ("Jeff's laptop runs on Linux.", [("jeff's laptop", "runs_on", "linux")]),
    ("Unit tests need mocks.", [("unit tests", "needs", "mocks")]),
    ("Jeff writes unit tests.", [("jeff", "writes", "unit tests")]),
    ("Jeff uses that library.", [("jeff", "uses", "library")]),
    ("Dave uses Emacs every day.", [("dave", "uses", "emacs")]),
    ("Jeff uses the last version.", [("jeff", "uses", "last version")]),
    ("Version 2.0 of the API requires Python 3.11.", [("version 2.0 of the api", "requires", "python 3.11")]),
    ("Mr. Smith works at Acme Inc. in London.", [("mr smith", "works_at", "acme inc")]),
    # passives: the agent becomes the subject
    ("Rust is used by Jeff.", [("jeff", "uses", "rust")]),
    ("The billing pipeline is owned by the payments team.", [("payments team", "owns", "billing pipeline")]),
    ("Python was created by Guido van Rossum.", [("guido van rossum", "creates", "python")]),
    ("The outage was caused by a bad migration.", [("bad migration", "causes", "outage")]),
    ("Postgres has been replaced by SQLite.", [("sqlite", "replaces", "postgres")]),
    ("The tests are maintained by the QA team.", [("qa team", "maintains", "tests")]),
    ("The parser is tested by the fuzzing suite.", [("fuzzing suite", "tests", "parser")]),
    ("The dashboard is blocked by INC-48213.", [("inc-48213", "blocks", "dashboard")]),
    ("INC-48213 was caused by a bad deploy of api.v2.", [("bad deploy of api.v2", "causes", "inc-48213")]),
    ("Postgres was replaced with SQLite.", [("sqlite", "replaces", "postgres")]),
    ("Sessions are stored in Redis.", [("redis", "stores", "sessions")]),
    ("Left-pad is a dependency of the build.", [("build", "depends_on", "left-pad")]),
    # lists and coordination
    ("Jeff uses Rust and Go.", [("jeff", "uses", "rust"), ("jeff", "uses", "go")]),
    ("Jeff uses Rust, Go and Python.", [("jeff", "uses", "rust"), ("jeff", "uses", "go"), ("jeff", "uses", "python")]),
    ("Alice and Bob use Rust.", [("alice", "uses", "rust"), ("bob", "uses", "rust")]),
    ("Jeff uses Rust and Ann likes Go.", [("jeff", "uses", "rust"), ("ann", "likes", "go")]),
    ("Jeff uses Rust which has Tokio.", [("jeff", "uses", "rust"), ("rust", "has", "tokio")]),
    ("Jeff likes Go but prefers Rust.", [("jeff", "likes", "go"), ("jeff", "prefers", "rust")]),
    ("The frontend is written in TypeScript and built with Vite.",
     [("frontend", "written_in", "typescript"), ("frontend", "built_with", "vite")]),
    ("The payment service calls the auth service and stores sessions in Redis.",
     [("payment service", "calls", "auth service"), ("payment service", "stores", "sessions")]),
    ("Jeff lives in Berlin; Ann lives in Paris.", [("jeff", "lives_in", "berlin"), ("ann", "lives_in", "paris")]),
    ("Ann, who works at Acme, uses Go.", [("ann", "works_at", "acme"), ("ann", "uses", "go")]),
    ("Jeff knows that Ann uses Go.", [("ann", "uses", "go")]),
    ("Jeff doesn't use Go and prefers Rust.", [("jeff", "prefers", "rust")]),
    ("Rust isn't slow and Go uses GC.", [("go", "uses", "gc")]),
    # nothing to trust
    ("Jeff does not use Go.", []),
    ("Jeff doesn't use Go.", []),
    ("Jeff never uses tabs.", []),
    ("Jeff no longer uses Vim.", []),
    ("Rust is not a scripting language.", []),
    ("Rust is not used by Jeff.", []),
    ("Jeff has no car.", []),
    ("No service uses Redis.", []),
    ("Jeff cannot use Docker.", []),
    ("Jeff won't use Docker.", []),
    ("Does Jeff use Rust?", []),
    ("Is Redis part of the stack?", []),
    ("Rust is used in production.", []),
    ("The release was delayed.", []),
    ("The build is failing.", []),
    ("He uses Rust.", []),
    ("They use Go.", []),
    ("This is great.", []),
    ("There are many tools.", []),
    ("The uses of Rust are many.", []),
    ("Hello world.", []),
    ("The cat is on the mat.", []),
    ("Jeff wants to learn Go.", []),
    ("", []),
    ("   \n\t ", []),
]


def _as_tuples(triples: list[Triple]) -> list[T]:
    return [(t.subject, t.relation, t.object) for t in triples]


@pytest.mark.parametrize(("sentence", "expected"), CASES, ids=[c[0][:40] or "empty" for c in CASES])
def test_extracts_the_stated_facts(sentence: str, expected: list[T]) -> None:
    assert _as_tuples(extract_triples(sentence)) == expected


def test_the_table_is_broad() -> None:
    assert len(CASES) >= 60
    assert sum(1 for _, expected in CASES if not expected) >= 15
    assert len({t[1] for _, expected in CASES for t in expected}) >= 40


def test_a_paragraph_yields_each_sentences_facts_once() -> None:
    text = "Jeff uses Rust. Rust has Tokio!\n\nJeff uses Rust.\n- Ann uses Go\n- Bob likes Python"
    assert _as_tuples(extract_triples(text)) == [
        ("jeff", "uses", "rust"), ("rust", "has", "tokio"), ("ann", "uses", "go"), ("bob", "likes", "python"),
    ]


def test_a_hard_wrapped_line_is_one_sentence() -> None:
    assert _as_tuples(extract_triples("The billing service\ndepends on Redis.")) == [
        ("billing service", "depends_on", "redis"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INC-48213 blocks the release.", ("inc-48213", "blocks", "release")),
        ("The client calls api.v2 for quotes.", ("client", "calls", "api.v2")),
        ("src/app.py imports src/util.py.", ("src/app.py", "imports", "src/util.py")),
        ("The job writes to s3://bucket/key.", ("job", "writes_to", "s3://bucket/key")),
        ("Alerts are sent to ops@example.com.", None),  # "sent" without "by": an agentless passive
        ("The service uses __init__.py (legacy).", ("service", "uses", "__init__.py")),
        ("The build uses C++ and C#.", ("build", "uses", "c++")),
    ],
)
def test_identifiers_are_kept_whole(text: str, expected: T | None) -> None:
    got = _as_tuples(extract_triples(text))
    if expected is None:
        assert got == []
    else:
        assert got[0] == expected


def test_relations_are_snake_case_and_plentiful() -> None:
    assert len(RELATIONS) >= 80
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", r) for r in RELATIONS)
    assert {"uses", "depends_on", "runs_on", "part_of", "located_in", "works_at", "causes", "is_a"} <= RELATIONS
    assert FUNCTIONAL_RELATIONS <= RELATIONS
    assert INVERSE_FUNCTIONAL_RELATIONS <= RELATIONS


_ISSUE_PHRASES = [
    "is", "is a", "was", "has", "have", "uses", "used by", "runs on", "depends on", "requires", "needs",
    "calls", "imports", "owns", "owned by", "belongs to", "part of", "contains", "includes", "located in",
    "lives in", "works at", "works on", "works with", "manages", "reports to", "created by", "written in",
    "built with", "caused by", "causes", "leads to", "replaced by", "replaces", "prefers", "likes",
    "dislikes", "knows", "married to", "born in", "stores", "reads", "writes", "sends to", "receives from",
    "connects to", "hosted on", "deployed to", "maintained by", "tested by", "blocked by", "blocks",
    "supersedes",
]


@pytest.mark.parametrize("phrase", _ISSUE_PHRASES)
def test_every_relation_phrase_of_the_issue_links_its_entities(phrase: str) -> None:
    triples = extract_triples(f"Alpha {phrase} Beta.")
    assert len(triples) == 1
    t = triples[0]
    assert {t.subject, t.object} == {"alpha", "beta"}
    assert (t.subject == "beta") == phrase.endswith(" by")  # passives put the agent first
    assert t.relation in RELATIONS


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("  The Payment Service!! ", "payment service"),
        ("my API.v2", "api.v2"),
        ("INC-48213,", "inc-48213"),
        ("src/app.py.", "src/app.py"),
        ("\"dark mode\"", "dark mode"),
        ("also the new billing service", "new billing service"),
        ("a very long name with far too many words in it", "long name with far"),  # cut to 6, then edges
        ("one two three four five six seven eight", "one two three four five six"),
        ("I", "user"),
        ("it", ""),
        ("the", ""),
        ("", ""),
        ("...", ""),
        ("Jeff\x00Smith", "jeff smith"),
        ("Ünïcödé Straße", "ünïcödé straße"),
    ],
)
def test_normalize_entity(raw: str, key: str) -> None:
    assert normalize_entity(raw) == key
    assert normalize_entity(key) == key


def _is_normalised(entity: str) -> bool:
    return (
        bool(entity)
        and entity == normalize_entity(entity)
        and entity == entity.lower().strip()
        and len(entity.split()) <= MAX_ENTITY_WORDS
        and "  " not in entity
    )


_WORDS = st.sampled_from(
    ["jeff", "ann", "rust", "go", "the", "a", "is", "not", "used", "by", "uses", "and", "or", ",", ".", "?", "which", "that", "who", "part", "of", "located", "in", "depends", "on", "no", "never", "has", "been", "INC-42", "api.v2", "src/x.py", "I", "it", "Don't", "isn't", "(", ")", ";", ":", "-", "\n"]
)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300))
def test_never_raises_and_outputs_are_normalised(text: str) -> None:
    for t in extract_triples(text):
        assert _is_normalised(t.subject) and _is_normalised(t.object)
        assert t.relation in RELATIONS
    for key in query_entities(text):
        assert _is_normalised(key)


@hsettings(max_examples=400, deadline=None)
@given(words=st.lists(_WORDS, max_size=30))
def test_sentence_like_input_gives_normalised_triples(words: list[str]) -> None:
    for t in extract_triples(" ".join(words)):
        assert _is_normalised(t.subject) and _is_normalised(t.object)
        assert t.subject != t.object
        assert t.relation in RELATIONS


@pytest.mark.parametrize(
    "text",
    [
        "Jeff uses Rust. " * 70_000,  # ~1 MB of sentences
        "a" * 1_000_000,
        "uses " * 200_000,
        "x. " * 350_000,
        "\x00" * 1_000_000,
        "(" * 500_000 + ")" * 500_000,
        "Jeff uses " + "Rust and " * 100_000,
    ],
    ids=["sentences", "one-word", "verbs", "dots", "nul", "brackets", "long-list"],
)
def test_huge_input_is_capped(text: str) -> None:
    t0 = time.perf_counter()
    triples = extract_triples(text)
    query_entities(text)
    assert time.perf_counter() - t0 < 2.0
    assert len(triples) <= graph.MAX_TRIPLES


def test_non_string_input_gives_nothing() -> None:
    assert extract_triples(None) == []  # type: ignore[arg-type]
    assert query_entities(b"jeff") == []  # type: ignore[arg-type]


# --- query entities ---------------------------------------------------------------------------


def test_query_entities_longest_first_without_stop_words() -> None:
    keys = query_entities("What does the payment service use for INC-48213?")
    assert keys[0] == "payment service"
    assert {"payment", "service", "inc-48213", "use"} <= set(keys)
    assert not {"what", "does", "the", "for"} & set(keys)
    sizes = [len(k.split()) for k in keys]
    assert sizes == sorted(sizes, reverse=True)


def test_query_entities_keep_connectors_inside_names() -> None:
    keys = query_entities("who is the CEO of Bank of America")
    assert "bank of america" in keys
    assert "of america" not in keys
    assert "who" not in keys


def test_query_entities_quotes_identifiers_and_possessives() -> None:
    keys = query_entities('settings for "dark mode" on Jeff\'s laptop in src/app.py')
    assert {"dark mode", "jeff's laptop", "jeff", "src/app.py", "laptop"} <= set(keys)


def test_query_entities_match_extracted_entities() -> None:
    stored = {t.subject for t in extract_triples("The billing service depends on Redis.")}
    assert stored & set(query_entities("why is the Billing Service slow?")) == {"billing service"}


def test_query_entities_of_nothing() -> None:
    assert query_entities("") == []
    assert query_entities("what is it?") == []


# --- Personalized PageRank ---------------------------------------------------------------------


def test_chain_ranks_by_distance_from_the_seed() -> None:
    ranks = personalized_pagerank([("a", "b", 1.0), ("b", "c", 1.0), ("c", "d", 1.0)], ["a"])
    assert ranks["b"] > ranks["c"] > ranks["d"]
    assert sum(ranks.values()) == pytest.approx(1.0)


def test_two_hop_association_beats_unrelated_nodes() -> None:
    edges = [("jeff", "rust", 1.0), ("rust", "tokio", 1.0), ("ann", "go", 1.0), ("go", "goroutines", 1.0)]
    ranks = personalized_pagerank(edges, ["jeff"])
    assert ranks["tokio"] > ranks.get("go", 0.0)
    assert ranks["tokio"] > ranks.get("goroutines", 0.0)
    assert "ann" not in ranks  # unreachable nodes get no mass


def test_triples_feed_pagerank_end_to_end() -> None:
    triples = extract_triples("Jeff uses Rust. Rust has Tokio. Ann uses Go.")
    ranks = personalized_pagerank([(t.subject, t.object, 1.0) for t in triples], query_entities("What does Jeff use?"))
    assert max((n for n in ranks if n not in ("jeff", "rust")), key=ranks.__getitem__) == "tokio"


def test_scores_sum_to_one_with_several_seeds() -> None:
    edges = [("a", "b", 1.0), ("b", "c", 2.0), ("c", "a", 0.5), ("d", "e", 1.0)]
    ranks = personalized_pagerank(edges, ["a", "d", "a"])
    assert sum(ranks.values()) == pytest.approx(1.0)
    assert set(ranks) == {"a", "b", "c", "d", "e"}


def test_disconnected_seeds_share_the_mass() -> None:
    ranks = personalized_pagerank([("a", "b", 1.0), ("c", "d", 1.0)], ["a", "c"])
    assert ranks["a"] + ranks["b"] == pytest.approx(0.5)
    assert ranks["c"] + ranks["d"] == pytest.approx(0.5)


def test_empty_graph_and_absent_seeds() -> None:
    assert personalized_pagerank([], ["a"]) == {}
    assert personalized_pagerank([("a", "b", 1.0)], []) == {}
    assert personalized_pagerank([("a", "b", 1.0)], ["z"]) == {}
    assert set(personalized_pagerank([("a", "b", 1.0)], ["z", "a"])) == {"a", "b"}


def test_dangling_seed_keeps_its_mass() -> None:
    # A self-loop and a zero weight spread nothing: the seed is a dangling node and teleports to itself.
    assert personalized_pagerank([("a", "a", 1.0), ("a", "b", 0.0)], ["a"]) == {"a": pytest.approx(1.0)}
    ranks = personalized_pagerank([("a", "b", float("nan")), ("b", "c", 1.0), ("a", "d", 1.0)], ["a", "b"])
    assert sum(ranks.values()) == pytest.approx(1.0)
    assert ranks["c"] > 0 and ranks["d"] > 0


def test_heavier_edges_pull_more_mass() -> None:
    ranks = personalized_pagerank([("a", "b", 5.0), ("a", "c", 1.0)], ["a"])
    assert ranks["b"] > 3 * ranks["c"]
    doubled = personalized_pagerank([("a", "b", 1.0), ("a", "b", 1.0), ("a", "c", 1.0)], ["a"])
    assert doubled["b"] == pytest.approx(2 * doubled["c"])


def _dense_reference(edges: list[Edge], seeds: list[str], alpha: float) -> dict[str, float]:
    names = sorted({n for s, o, _ in edges for n in (s, o)})
    at = {n: i for i, n in enumerate(names)}
    adjacency = np.zeros((len(names), len(names)))
    for s, o, w in edges:
        if s != o:
            adjacency[at[s], at[o]] += w
            adjacency[at[o], at[s]] += w
    transition = adjacency / adjacency.sum(axis=0, keepdims=True)
    restart = np.zeros(len(names))
    for s in set(seeds):
        restart[at[s]] = 1 / len(set(seeds))
    scores = np.linalg.solve(np.eye(len(names)) - alpha * transition, (1 - alpha) * restart)
    return {n: float(scores[at[n]]) for n in names}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_a_dense_linear_solve(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [f"n{i}" for i in range(60)]
    edges: list[Edge] = [(nodes[i], nodes[i + 1], 1.0) for i in range(59)]  # connected
    edges += [(rng.choice(nodes), rng.choice(nodes), rng.uniform(0.1, 3.0)) for _ in range(200)]
    seeds = rng.sample(nodes, 3)
    expected = _dense_reference(edges, seeds, 0.85)
    got = personalized_pagerank(edges, seeds)
    assert set(got) == set(expected)
    assert max(abs(got[n] - expected[n]) for n in expected) < 1e-5


def test_alpha_zero_stays_on_the_seeds() -> None:
    ranks = personalized_pagerank([("a", "b", 1.0)], ["a"], alpha=0.0)
    assert ranks == {"a": pytest.approx(1.0)}


# --- bounded neighbourhood ---------------------------------------------------------------------


class _Store:
    """A graph answering "edges touching these entities" the way the SQL store does."""

    def __init__(self, edges: list[Edge]) -> None:
        self.edges = edges
        self.calls: list[list[str]] = []

    def __call__(self, frontier: list[str]) -> list[Edge]:
        self.calls.append(list(frontier))
        wanted = set(frontier)
        return [e for e in self.edges if e[0] in wanted or e[1] in wanted]


def _chain(n: int) -> list[Edge]:
    return [(f"n{i}", f"n{i + 1}", 1.0) for i in range(n)]


def test_bfs_respects_max_hops() -> None:
    store = _Store(_chain(10))
    edges = bounded_neighbourhood(["n0"], store, max_hops=2)
    assert edges == [("n0", "n1", 1.0), ("n1", "n2", 1.0)]
    assert len(store.calls) == 2
    assert bounded_neighbourhood(["n5"], _Store(_chain(10)), max_hops=1) == [("n4", "n5", 1.0), ("n5", "n6", 1.0)]


def test_bfs_returns_each_edge_once() -> None:
    triangle: list[Edge] = [("a", "b", 1.0), ("b", "c", 1.0), ("c", "a", 1.0), ("c", "d", 2.0)]
    edges = bounded_neighbourhood(["a"], _Store(triangle), max_hops=3)
    assert sorted(edges) == sorted(triangle)


def test_bfs_keeps_parallel_edges() -> None:
    parallel: list[Edge] = [("a", "b", 1.0), ("a", "b", 1.0), ("b", "c", 1.0)]
    assert bounded_neighbourhood(["a"], _Store(parallel), max_hops=2) == parallel


def test_bfs_respects_max_edges() -> None:
    star = [("hub", f"leaf{i}", 1.0) for i in range(100)] + [(f"leaf{i}", f"far{i}", 1.0) for i in range(100)]
    store = _Store(star)
    edges = bounded_neighbourhood(["hub"], store, max_hops=2, max_edges=30)
    assert len(edges) == 30
    assert len(store.calls) == 1


def test_bfs_batches_the_frontier() -> None:
    star = [("hub", f"leaf{i}", 1.0) for i in range(25)] + [(f"leaf{i}", f"far{i}", 1.0) for i in range(25)]
    store = _Store(star)
    edges = bounded_neighbourhood(["hub"], store, max_hops=2, batch=10)
    assert len(edges) == 50
    assert [len(c) for c in store.calls] == [1, 10, 10, 5]


def test_bfs_of_unknown_seeds_and_no_hops() -> None:
    assert bounded_neighbourhood(["zzz"], _Store(_chain(3))) == []
    assert bounded_neighbourhood([], _Store(_chain(3))) == []
    assert bounded_neighbourhood(["n0"], _Store(_chain(3)), max_hops=0) == []
    assert bounded_neighbourhood(["n0"], _Store(_chain(3)), max_edges=0) == []


def test_bfs_then_pagerank_from_the_store() -> None:
    store = _Store([("jeff", "rust", 1.0), ("rust", "tokio", 1.0), ("tokio", "mio", 1.0), ("ann", "go", 1.0)])
    edges = bounded_neighbourhood(["jeff"], store, max_hops=2)
    ranks = personalized_pagerank(edges, ["jeff"])
    assert set(ranks) == {"jeff", "rust", "tokio"}
