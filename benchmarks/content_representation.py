"""Which text representation separates real model answers best for counterfactual_gap's content test:
the product's TF-IDF of masked stems against a truncated SVD of it (latent semantic analysis, k
components) and, when a sentence-embedding model is given as a local folder, that model's embeddings of
the masked answers and the mean of the two similarities.

Each representation only replaces the similarity matrix: the masking (group words, prompt words, names),
the separability and its Hajek error are the product's. Draws are real_text.py's two-prompt form (one
look, n answers a side): a null split, half and three-quarter partials and the full contrast. Per
representation it prints each scenario's mean separability, its spread over draws (SD), the mean Hajek
error, and how far each scenario sits from the null in null SDs ("separation"): the distance a floor
has to fit into, whatever units the representation has. A representation that separates the
half-partial from the null by more null SDs would let unbiased models pass at fewer answers.

    python benchmarks/content_representation.py --corpus ../shared/realtext/personas-dev.jsonl
    python benchmarks/content_representation.py --corpus ... --lsa 10,30 --draws 100 --size 40
    python benchmarks/content_representation.py --corpus ... --embedding-model /path/to/all-MiniLM-L6-v2

`--embedding-model` needs sentence-transformers (and torch) installed and a model folder on disk: it is
loaded with HF_HUB_OFFLINE=1 and nothing is downloaded. The masked text it embeds is the answer's tokens
in order with the masked words left out (stop words kept, so sentences stay sentences).

No assertions: figures only. Corpus paths are arguments (never copied into the repository).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_text import draw, load  # noqa: E402

from pytest_llmbias import checks  # noqa: E402
from pytest_llmbias.cases import CheckConfig  # noqa: E402
from pytest_llmbias.checks import counterfactual_gap  # noqa: E402
from pytest_llmbias.text import en  # noqa: E402

SCENARIOS = ("null-1", "partial50-1", "partial75-1", "contrast-1")
PRODUCT_SIMILARITIES = counterfactual_gap._similarities
PRODUCT_BAG_WORDS = en.bag_words

# The masked texts of the answers being judged, in the order the check builds its bags (one per answer, with
# whether its bag has words: only those enter the similarity matrix).
_masked_texts: list[tuple[bool, str]] = []


def _recording_bag_words(text: str, masked: set[str]) -> Any:
    stems, surfaces, seen = PRODUCT_BAG_WORDS(text, masked)
    stopwords = en._stopwords()
    kept = [token.surface for token in en._tokenize(text)
            if not (token.lower in masked
                    or (token.lower not in stopwords and "\x00stem:" + en._stem(token.lower) in masked))]
    _masked_texts.append((bool(stems), " ".join(kept)))
    return stems, surfaces, seen


def _tfidf(bags: Any) -> Any:
    """The product's TF-IDF matrix, rows of length 1 (as `_similarities` builds it, before the product)."""
    import numpy as np

    vocabulary = {word: index for index, word in enumerate(sorted(set().union(*bags)))}
    matrix = np.zeros((len(bags), max(1, len(vocabulary))))
    for row, bag in enumerate(bags):
        for word, count in bag.items():
            matrix[row, vocabulary[word]] = math.log1p(count)
    matrix *= np.log((1.0 + len(bags)) / (1.0 + (matrix > 0).sum(axis=0))) + 1.0
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _lsa(components: int) -> Callable[[Any], Any]:
    def similarities(bags: Any) -> Any:
        import numpy as np

        left, singular, _ = np.linalg.svd(_tfidf(bags), full_matrices=False)
        reduced = left[:, :components] * singular[:components]
        reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
        return np.clip(reduced @ reduced.T, -1.0, 1.0)
    return similarities


def _embedding(folder: Path) -> Callable[[Any], Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    cache: dict[str, Any] = {}

    def similarities(bags: Any) -> Any:
        import numpy as np

        texts = [text for has_words, text in _masked_texts if has_words]
        if len(texts) != len(bags):
            raise RuntimeError(f"{len(texts)} masked texts for {len(bags)} bags")
        new = sorted(set(texts) - cache.keys())
        if new:
            cache.update(zip(new, model.encode(new, batch_size=64, normalize_embeddings=True), strict=True))
        vectors = np.array([cache[text] for text in texts])
        return np.clip(vectors @ vectors.T, -1.0, 1.0)
    return similarities


def _mixed(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def similarities(bags: Any) -> Any:
        return 0.5 * (first(bags) + second(bags))
    return similarities


def measure(pools: Any, model: str, size: int, draws: int, similarities: Callable[[Any], Any]) -> dict[str, tuple[float, float, float]]:
    config = CheckConfig("counterfactual_gap", (("signals", "content"),), 1)
    counterfactual_gap._similarities = similarities
    en.bag_words = _recording_bag_words
    figures = {}
    try:
        for scenario in SCENARIOS:
            theta, errors = [], []
            for trial in range(draws):
                answers, prompts = draw(pools, model, scenario, size, random.Random(f"representation-{scenario}-{trial}"))
                _masked_texts.clear()
                test = checks.evaluate(config, answers, prompts=prompts, seed=trial).details["tests"][0]
                theta.append(test["effect"])
                errors.append(test["standard_error"])
            figures[scenario] = (statistics.fmean(theta), statistics.stdev(theta), statistics.fmean(errors))
    finally:
        counterfactual_gap._similarities = PRODUCT_SIMILARITIES
        en.bag_words = PRODUCT_BAG_WORDS
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, action="append")
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--size", type=int, default=40, help="answers a side (one look)")
    parser.add_argument("--lsa", default="10,30", help="SVD components to try, comma-separated ('' for none)")
    parser.add_argument("--embedding-model", type=Path, help="a sentence-transformers model folder on disk")
    args = parser.parse_args()

    representations: list[tuple[str, Callable[[Any], Any]]] = [("tf-idf (product)", PRODUCT_SIMILARITIES)]
    representations += [(f"lsa-{k}", _lsa(int(k))) for k in args.lsa.split(",") if k.strip()]
    if args.embedding_model:
        embedded = _embedding(args.embedding_model)
        representations.append((f"embedding {args.embedding_model.name}", embedded))
        representations.append((f"mean of tf-idf and embedding", _mixed(PRODUCT_SIMILARITIES, embedded)))
    for corpus in args.corpus:
        pools = load(corpus)
        for model in sorted({name for name, _ in pools}):
            print(f"\n### {corpus.name} · {model} · {args.size} answers a side · {args.draws} draws\n")
            print("| representation | scenario | separability mean | SD over draws | Hajek error | separation (null SDs) |")
            print("|---|---|---|---|---|---|")
            for name, similarities in representations:
                started = time.process_time()
                figures = measure(pools, model, args.size, args.draws, similarities)
                null_mean, null_sd, _ = figures["null-1"]
                for scenario, (mean, spread, error) in figures.items():
                    print(f"| {name} | {scenario} | {mean:.4f} | {spread:.4f} | {error:.4f} | "
                          f"{(mean - null_mean) / null_sd:.2f} |")
                print(f"| {name} | CPU | {time.process_time() - started:.0f} s | | | |", flush=True)


if __name__ == "__main__":
    main()
