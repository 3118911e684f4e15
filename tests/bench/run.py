"""Print Afina's benchmark figures (1 thread): ``python -m tests.bench.run [--quick]``."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from backends.threads import limit_thread_env

limit_thread_env()
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from backends.retrieval.index_set import Routes  # noqa: E402
from chatbot.knowledge.ingest import ingest  # noqa: E402
from tests.bench import (  # noqa: E402
    casual,
    ceiling,
    export,
    fastpath,
    finetune,
    handover,
    languages,
    llm,
    pii,
    retrieval,
    security,
    tune,
    turns,
)

SMALL_KB = Path(__file__).resolve().parents[1] / "data" / "kb_small"


def main() -> None:
    """Run every benchmark, or the ones named."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller samples")
    parser.add_argument(
        "--only",
        choices=[
            "retrieval",
            "languages",
            "turns",
            "export",
            "llm",
            "finetune",
            "pii",
            "tune",
            "security",
            "handover",
            "fastpath",
            "ceiling",
        ],
        help="one group",
    )
    parser.add_argument(
        "--export-messages",
        type=int,
        default=None,
        help="stored messages for the export bench (default 1,000,000; --quick 100,000)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server URL to create a scratch database on",
    )
    parser.add_argument(
        "--tune-minutes",
        type=float,
        default=None,
        help="training budget of each tune run (default 10 on the KB, 20 on Banking77)",
    )
    parser.add_argument(
        "--handover-tuned-en",
        default=None,
        help="handover bench: also calibrate with this tuned English embedder folder",
    )
    parser.add_argument(
        "--handover-tuned-es",
        default=None,
        help="handover bench: also calibrate with this tuned Spanish embedder folder",
    )
    parser.add_argument(
        "--tune-no-banking", action="store_true", help="tune bench: the knowledge-base run only"
    )
    parser.add_argument(
        "--tune-no-kb", action="store_true", help="tune bench: the Banking77 run only"
    )
    parser.add_argument(
        "--ceiling-model",
        default=None,
        help="ceiling bench: also measure this sentence-transformers model folder",
    )
    parser.add_argument(
        "--tune-language",
        choices=["en", "es", "both"],
        default="both",
        help="tune bench: which language's embedder to tune on the knowledge base",
    )
    args = parser.parse_args()
    print("threads: 1 (OMP/BLAS/torch/faiss)")
    if args.only in (None, "retrieval"):
        retrieval.run(args.quick)
    if args.only in (None, "languages"):
        languages.run(args.quick)
        casual.run()
    if args.only in (None, "fastpath"):
        fastpath.run(args.quick)
    if args.only in (None, "handover"):
        handover.run(args.quick, args.handover_tuned_en, args.handover_tuned_es)
    if args.only in (None, "turns"):
        with tempfile.TemporaryDirectory() as tmp:
            index_dir = Path(tmp) / "index"
            ingest(SMALL_KB, index_dir=index_dir, routes=Routes(), hnsw_min_rows=50_000)
            turns.run(index_dir, 50 if args.quick else 300, args.postgres)
    if args.only in (None, "llm"):
        llm.run(args.quick)
    if args.only in (None, "pii"):
        pii.run(args.quick)
    if args.only in (None, "export"):
        size = args.export_messages or (100_000 if args.quick else 1_000_000)
        export.run(size, args.postgres)
    if args.only in (None, "security"):
        security.run(args.quick)
    if args.only in (None, "finetune"):
        finetune.run(args.quick)
    if args.only in (None, "ceiling"):
        ceiling.run(args.quick, args.ceiling_model)
    if args.only in (None, "tune"):
        tune.run(
            args.quick,
            args.tune_minutes,
            banking=not args.tune_no_banking,
            kb=not args.tune_no_kb,
            languages=args.tune_language,
        )


if __name__ == "__main__":
    main()
