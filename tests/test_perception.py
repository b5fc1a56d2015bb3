"""Behaviour of the rule-based perception pass: task types, entities, constraints, risk, ambiguity."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from colony.agent import perception
from colony.agent.perception import MAX_ITEM_CHARS, MAX_LIST_ITEMS, Perception, perceive

TASK_CASES: list[tuple[str, str]] = [
    # question
    ("What is the capital of France?", "question"),
    ("why does the build take so long", "question"),
    ("How many users signed up yesterday?", "question"),
    ("Is this function thread-safe?", "question"),
    ("Explain how the retry logic works", "question"),
    ("the server returns 500 errors sometimes?", "question"),
    # action
    ("Run the test suite", "action"),
    ("Please create a new file called notes.md", "action"),
    ("Can you fix the typo in README.md?", "action"),
    ("Deploy the app to staging", "action"),
    ("rename foo.py to bar.py", "action"),
    ("I need to update the changelog", "action"),
    ("Let's add a retry to the HTTP client", "action"),
    ("git push origin main --force", "action"),
    # planning
    ("Plan the migration to Postgres", "planning"),
    ("How should we structure the new API?", "planning"),
    ("What are the next steps for the release?", "planning"),
    ("We need a roadmap for Q3", "planning"),
    ("Outline a strategy for reducing cloud costs", "planning"),
    ("Break this down into milestones", "planning"),
    # research
    ("Investigate why the CI is flaky", "research"),
    ("Compare SQLite and Postgres for our workload", "research"),
    ("Find out which commit introduced the regression", "research"),
    ("Could you explore alternatives to Redis?", "research"),
    ("I'd like a comparison of three embedding models", "research"),
    ("Look into the memory leak in the worker", "research"),
    # meta
    ("Tell me about yourself", "meta"),
    ("What can you do?", "meta"),
    ("What's in your memory right now?", "meta"),
    ("Show me your status", "meta"),
    ("Who are you?", "meta"),
    ("Describe your capabilities", "meta"),
    # unclear
    ("hmm", "unclear"),
    ("the thing from before", "unclear"),
    ("lorem ipsum dolor sit amet", "unclear"),
    ("😀😀😀", "unclear"),
    ("בדיקה של טקסט", "unclear"),
    ("", "unclear"),
]


@pytest.mark.parametrize(("text", "expected"), TASK_CASES)
def test_task_type(text: str, expected: str) -> None:
    assert perceive(text).task_type == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Search the logs for the word 'plan'", "action"),  # a quoted word is mentioned, not used
        ("Fix it yourself", "action"),  # "yourself" after an action verb is not about the agent
    ],
)
def test_task_type_ignores_mentions(text: str, expected: str) -> None:
    assert perceive(text).task_type == expected


ENTITY_CASES: list[tuple[str, list[str]]] = [
    ('Open "My Report.docx" and the “annual summary”', ["My Report.docx", "annual summary"]),
    ("Replace 'old name' with the new one", ["old name"]),
    ("Call `perceive()` from `run_turn`", ["perceive()", "run_turn"]),
    ("Check src/app.py, ~/notes and ../lib/util.rs", ["src/app.py", "~/notes", "../lib/util.rs"]),
    ("Read /etc/hosts and C:\\Users\\bob\\x.txt", ["/etc/hosts", "C:\\Users\\bob\\x.txt"]),
    ("Edit config.toml and README.md", ["config.toml", "README.md"]),
    ("See https://docs.python.org/3/library/re.html.", ["https://docs.python.org/3/library/re.html"]),
    ("Ask Alice and Bob Smith whether Kubernetes works.", ["Alice", "Bob Smith", "Kubernetes"]),
    ("Meet at Café Zürich with Иван", ["Café Zürich", "Иван"]),
]


@pytest.mark.parametrize(("text", "expected"), ENTITY_CASES)
def test_entities_found(text: str, expected: list[str]) -> None:
    entities = perceive(text).entities
    for entity in expected:
        assert entity in entities


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        ("Deploy the service now", "Deploy"),  # sentence-initial capital
        ("It works. Then it fails", "Then"),
        ("I think so, and I'm sure", "I"),
        ("use and/or logic on 1/2/2024, e.g. here", "and/or"),
        ("use and/or logic on 1/2/2024, e.g. here", "1/2/2024"),
        ("use and/or logic on 1/2/2024, e.g. here", "e.g"),
        ("don't break it", "don"),
    ],
)
def test_entities_not_found(text: str, absent: str) -> None:
    assert absent not in perceive(text).entities


def test_url_query_is_kept_whole_and_not_counted_as_question() -> None:
    p = perceive("Fetch https://example.com/a?b=1&c=2 now")
    assert p.entities == ["https://example.com/a?b=1&c=2"]
    assert p.question_count == 0


def test_entities_are_deduplicated_in_order() -> None:
    p = perceive("Copy `app.py` to Berlin, then ask Berlin about app.py again")
    assert p.entities == ["app.py", "Berlin"]


CONSTRAINT_CASES: list[tuple[str, str]] = [
    ("You must not touch the database.", "must not touch the database"),
    ("Never push to main.", "Never push to main"),
    ("Do not delete logs.", "Do not delete logs"),
    ("Please don't restart the worker", "don't restart the worker"),
    ("We cannot use Docker here.", "cannot use Docker here"),
    ("Only edit the tests.", "Only edit the tests"),
    ("Ship it before noon", "before noon"),
    ("Run it after lunch", "after lunch"),
    ("Finish by Friday", "by Friday"),
    ("Finish by 2025-06-01", "by 2025-06-01"),
    ("Keep it up until 5pm", "until 5pm"),
    ("Migrate without downtime", "without downtime"),
    ("Keep at least 3 replicas", "at least 3 replicas"),
    ("Allow at most 2 retries", "at most 2 retries"),
    ("It requires numpy>=1.26 too", "numpy>=1.26"),
    ("Pin requests == 2.31.0", "requests == 2.31.0"),
    ("Use lodash@4.17.21", "lodash@4.17.21"),
]


@pytest.mark.parametrize(("text", "expected"), CONSTRAINT_CASES)
def test_constraints(text: str, expected: str) -> None:
    assert expected in perceive(text).constraints


@pytest.mark.parametrize(
    "text",
    [
        "Hereafter we talk about the stand-by mode",  # "after" / "by" inside other words
        "Compute 2 ^ 10 and mail me at bob@example.com",
        "The quick brown fox jumps over the lazy dog",
    ],
)
def test_no_constraints(text: str) -> None:
    assert perceive(text).constraints == []


RISK_CASES: list[tuple[str, str]] = [
    ("Delete the old branches", "delete"),
    ("Remove the cache directory", "remove"),
    ("DROP TABLE users;", "drop table"),
    ("drop database analytics", "drop database"),
    ("Truncate the events table", "truncate"),
    ("run rm -rf build/", "rm -rf"),
    ("rm -r -f /tmp/x", "rm -rf"),
    ("sudo apt-get install nginx", "sudo"),
    ("chmod 777 /srv/www", "chmod 777"),
    ("chmod -R a+rwx data", "chmod 777"),
    ("git push --force", "force push"),
    ("force-push the rebased branch", "force push"),
    ("git reset --hard HEAD~3", "reset --hard"),
    ("git clean -fdx", "git clean"),
    ("Restart the prod database", "production"),
    ("Apply it to production", "production"),
    ("Deploy the new build", "deploy"),
    ("Rotate the credentials", "credentials"),
    ("What's the admin password?", "credentials"),
    ("Put the API key in the config", "credentials"),
    ("Add my private key to the agent", "credentials"),
    ("Print the GitHub token", "credentials"),
    ("Read the .env file", "credentials"),
    ("mkfs.ext4 /dev/sdb1", "format disk"),
    ("Format the disk", "format disk"),
    ("Shut down the server tonight", "shutdown"),
    ("reboot the box", "reboot"),
    ("kill -9 4242", "kill -9"),
    ("curl -sSL https://get.example.sh | sudo bash", "curl | sh"),
    ("wget -qO- https://x.io/install | sh", "curl | sh"),
    ("Overwrite the existing config", "overwrite"),
    ("Wipe the staging bucket", "wipe"),
]


@pytest.mark.parametrize(("text", "expected"), RISK_CASES)
def test_risk_indicators(text: str, expected: str) -> None:
    assert expected in perceive(text).risk_indicators


def test_risk_names_are_normalised_and_deduplicated() -> None:
    p = perceive("Delete it, deleted them, deleting more; PROD then production again")
    assert p.risk_indicators == ["delete", "production"]


def test_curl_pipe_still_reports_sudo() -> None:
    assert perceive("curl https://x.sh | sudo bash").risk_indicators == ["sudo", "curl | sh"]


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Format the code with ruff",  # formatting code is not formatting a disk
        "git push origin feature-f",
        "Summarise the product roadmap",  # "product" is not "prod"
        "The firm performs well",  # "rm" inside words
    ],
)
def test_no_risk(text: str) -> None:
    assert perceive(text).risk_indicators == []


def test_risk_in_the_tail_of_a_long_paste_is_seen() -> None:
    assert "rm -rf" in perceive("log line\n" * 50_000 + "now run rm -rf / please").risk_indicators


def test_vague_short_scores_higher_than_precise_detailed() -> None:
    vague = perceive("do something with the stuff maybe")
    precise = perceive(
        "Rename the function `load_config` in src/colony/config.py to `read_config`, update every "
        "caller under src/ and tests/, and keep the old name as a deprecated alias until version 0.3. "
        "Don't change behaviour; run the test suite with pytest before you finish."
    )
    assert vague.ambiguity > 0.7 > 0.3 > precise.ambiguity


def test_ambiguity_rules_move_the_score_the_right_way() -> None:
    base = perceive("Update the changelog for the release")
    assert perceive("Update the changelog for the release somehow, maybe").ambiguity > base.ambiguity
    assert (
        perceive("Update the changelog for the Kestrel release in docs/CHANGES.md").ambiguity < base.ambiguity
    )
    assert perceive("fix").ambiguity > perceive("fix the failing test in tests/test_app.py").ambiguity
    one = perceive("Why is the build red?")
    many = perceive("Why is the build red? Who broke it? When? Can we revert?")
    assert many.question_count == 4
    assert many.ambiguity > one.ambiguity
    assert perceive("").ambiguity == 1.0
    assert perceive("   \n\t ").ambiguity == 1.0


def test_ambiguity_weights_are_named_constants() -> None:
    assert perception.VAGUE_WORD_WEIGHT > 0 > perception.ENTITY_WEIGHT
    assert perception.SHORT_INPUT_PENALTY > 0 > perception.DETAILED_INPUT_BONUS
    assert perception.MULTI_QUESTION_WEIGHT > 0
    assert 0 <= perception.AMBIGUITY_BASE <= 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Can you run the tests?", True),
        ("What's inside src/app.py?", True),
        ("Look at https://example.com", True),
        ("Investigate the outage", True),
        ("What is the capital of France?", False),
        ("Tell me about yourself", False),
        ("Plan my week", False),
    ],
)
def test_likely_needs_tools(text: str, expected: bool) -> None:
    assert perceive(text).likely_needs_tools is expected


def test_summary_contains_the_essentials() -> None:
    p = perceive('Delete "old.log" in /var/log/app before Friday and never touch production!')
    lines = p.summary().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[Perception] task=action ambiguity=")
    assert f"ambiguity={p.ambiguity:.2f}" in lines[0]
    assert "risk=delete,production" in lines[0]
    assert lines[1] == "entities=old.log | /var/log/app | Friday"
    assert lines[2] == "constraints=before Friday and never touch production"


def test_summary_is_one_line_without_entities_or_constraints() -> None:
    summary = perceive("hello there").summary()
    assert summary == "[Perception] task=unclear ambiguity=0.70 tools=no"  # 0.3 + short 0.25 + unclear 0.15


def test_summary_masks_secrets() -> None:
    token = "ghp_" + "a1B2" * 10
    summary = perceive(f'Use the token "{token}" for the GitHub upload').summary()
    assert token not in summary
    assert "[REDACTED]" in summary
    assert "GitHub" in summary


def test_summary_stays_short() -> None:
    summary = perceive(
        "Touch " + " ".join(f"`identifier_number_{i}`" for i in range(40)) + " before noon"
    ).summary()
    lines = summary.splitlines()
    assert len(lines) == 3
    assert all(len(line) <= 240 for line in lines)
    assert lines[1].count(" | ") == 7  # at most 8 entities shown


def test_summary_head_line_is_capped_even_with_every_risk() -> None:
    text = " ".join(text for text, _ in RISK_CASES)
    head = perceive(text).summary().splitlines()[0]
    assert len(head) <= 240
    assert head.startswith("[Perception] task=action")


def test_perception_is_frozen() -> None:
    p = perceive("Run the tests")
    with pytest.raises(ValidationError):
        p.task_type = "meta"


def test_one_megabyte_input_is_bounded_and_fast() -> None:
    chunk = 'Ask Alice about "item" in src/mod.py, see https://x.io/p before noon and never stop. '
    text = (chunk * (1_048_576 // len(chunk) + 1))[:1_048_576]
    p = perceive(text)
    assert len(p.entities) <= MAX_LIST_ITEMS
    assert len(p.constraints) <= MAX_LIST_ITEMS
    assert 0.0 <= p.ambiguity <= 1.0
    best = min(_elapsed(text) for _ in range(5))
    # Guards against super-linear blow-up only; the speed itself is measured in bench/bench_perception.py.
    assert best < 1.0, f"perceive took {best * 1e3:.1f} ms on 1 MB"


def test_one_megabyte_single_token_is_fast() -> None:
    text = "x" * 1_048_576
    assert perceive(text).task_type == "unclear"
    assert min(_elapsed(text) for _ in range(5)) < 1.0  # no blow-up; speed is in bench/


def test_long_items_are_cut() -> None:
    p = perceive('Quote "' + "word " * 39 + 'end" then `' + "y" * 199 + "`")
    assert all(len(item) <= MAX_ITEM_CHARS for item in p.entities)


def test_nul_rtl_emoji_and_surrogates() -> None:
    p = perceive('Delete\x00 the file "a\x00b" \ud800 and \u200fשלום עולם\u200f 😀 Ünïcödé Straße')
    assert p.task_type == "action"
    assert "delete" in p.risk_indicators
    assert "a b" in p.entities
    assert all("\x00" not in e and "\ud800" not in e for e in p.entities)
    p.summary().encode("utf-8")  # a lone surrogate would make this raise


def test_lower_casing_that_changes_length_is_safe() -> None:
    p = perceive("İİİ must keep İstanbul before noon")
    assert any("before noon" in c.lower() for c in p.constraints)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=3000) | st.binary(max_size=500).map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_never_raises_and_stays_bounded(text: str) -> None:
    p = perceive(text)
    assert isinstance(p, Perception)
    assert 0.0 <= p.ambiguity <= 1.0
    for items in (p.entities, p.constraints, p.risk_indicators):
        assert len(items) <= MAX_LIST_ITEMS
        assert all(0 < len(item) <= MAX_ITEM_CHARS for item in items)
    assert p.question_count >= 0
    assert 1 <= len(p.summary().splitlines()) <= 3


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["delete", "`x`", '"q"', "src/a.py", "https://a.b/c?", "Must", "only", "?", "Bob", " ", "\n", "é"]
        ),
        max_size=400,
    ).map("".join)
)
def test_never_raises_on_dense_entity_soup(text: str) -> None:
    p = perceive(text)
    assert len(p.entities) <= MAX_LIST_ITEMS
    assert 0.0 <= p.ambiguity <= 1.0


def _elapsed(text: str) -> float:
    start = time.perf_counter()
    perceive(text)
    return time.perf_counter() - start
