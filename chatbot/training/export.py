"""Export logged chats as fine-tuning data: filter, redact, split, validate, report, record lineage.

Two streaming passes with constant memory: (1) conversations are read from the database a
batch at a time, turned into redacted examples, serialized and checked once (the validator's
per-example facts), and staged by split in a temporary folder; (2) staged conversations are
re-read in batches, near-duplicates across splits are kept on the held-out side, the final
JSONL files are written from the staged lines as they are and each conversation's split is
recorded in ``export_items``. The training file's report comes from the staged facts; the
held-out files (a small share) are validated again from disk, against the training prompts.
The report is stored with the ``exports`` row. Only held-out embeddings and prompt digests
are kept in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chatbot.db import store
from chatbot.db.training_queries import (
    ConversationKey,
    StoredConversation,
    conversations_of,
    count_conversations,
    gather_statistics,
    iter_conversation_keys,
)
from chatbot.errors import InputError
from chatbot.settings import PiiSettings, TrainingSettings
from chatbot.training.examples import (
    ExampleOptions,
    build_examples,
    dedup_text,
    redact_conversation,
)
from chatbot.training.filters import ExportFilters, keep_conversation
from chatbot.training.lineage import HashedFile, Lineage
from chatbot.training.redact import Redactor
from chatbot.training.report import build_report, render_text
from chatbot.training.split import (
    HELD_OUT,
    SPLITS,
    ExactDuplicates,
    NearDuplicates,
    SplitPlan,
    assign,
    batched,
)
from chatbot.training.validate import Facts, FileResult, Validator

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

Encode = Callable[[list[str]], Any]


@dataclass(frozen=True)
class ExportOptions:
    """Everything that shapes an export (recorded in its lineage)."""

    filters: ExportFilters = field(default_factory=ExportFilters)
    examples: ExampleOptions = field(default_factory=ExampleOptions)
    plan: SplitPlan = field(default_factory=SplitPlan)
    redact: bool = True
    near_duplicates: bool = True
    threshold: float = 0.95
    pin_test: bool = False
    # One file holding the training split only (held-out conversations are left out).
    single_file: bool = False
    model: str = "gpt-4o-mini-2024-07-18"
    max_example_tokens: int = 65_536
    price_per_million: float = 3.0
    # redacted messages (id, role, text) of the first conversations kept for a preview
    preview: int = 0
    # processes that stage conversations: 0 = automatic (up to 2, for big exports only),
    # 1 = this process only
    workers: int = 0

    @classmethod
    def from_settings(cls, training: TrainingSettings, **overrides: Any) -> ExportOptions:
        """Options with the configured defaults, then ``overrides``."""
        base = cls(
            examples=ExampleOptions(system_prompt=training.system_prompt),
            plan=SplitPlan(training.validation_fraction, training.test_fraction, training.seed),
            threshold=training.near_duplicate_threshold,
            model=training.model,
            max_example_tokens=training.max_example_tokens,
            price_per_million=training.price_per_million_tokens,
            workers=training.export_workers,
        )
        return replace(base, **overrides)

    def lineage(self) -> dict[str, Any]:
        """The options as stored in ``exports.filters``."""
        ex = self.examples
        return {
            **self.filters.to_json(),
            "format": ex.format,
            "per_turn": ex.per_turn,
            "unapproved": "drop" if ex.drop_unapproved else "weight0",
            "fallback_system_prompt": ex.system_prompt,
            "validation_fraction": self.plan.validation,
            "test_fraction": self.plan.test,
            "near_duplicates": self.near_duplicates,
            "near_duplicate_threshold": self.threshold,
            "pin_test": self.pin_test,
            "single_file": self.single_file,
            "redact": self.redact,
            "model": self.model,
        }


@dataclass
class ExportResult:
    """What an export produced."""

    export_id: int
    files: dict[str, Path]
    report: dict[str, Any]
    text: str
    # (message id, role, redacted text) of the first exported conversations (``preview``)
    preview: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the files pass validation (no errors)."""
        return bool(self.report["ok"])


@dataclass
class _Collected:
    """Pass-one totals."""

    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    staged: Counter[str] = field(default_factory=Counter)
    redactions: Counter[str] = field(default_factory=Counter)
    redacted_conversations: int = 0
    preview: list[tuple[str, str, str]] = field(default_factory=list)

    def merge(self, other: _Collected, preview: int) -> None:
        """Add a later batch's totals (its preview rows after this one's, up to ``preview``)."""
        self.read += other.read
        self.skipped.update(other.skipped)
        self.staged.update(other.staged)
        self.redactions.update(other.redactions)
        self.redacted_conversations += other.redacted_conversations
        self.preview += other.preview[: max(0, preview - len(self.preview))]


@dataclass
class _Batch:
    """One batch of conversations staged: totals and (split, staged line) in order."""

    totals: _Collected
    lines: list[tuple[str, str]]


class _Stager:
    """Pass one's work on conversations: filters, redaction, examples, their JSON lines and
    validation facts. Runs in the export's process, or in worker processes for big exports."""

    def __init__(self, options: ExportOptions):
        self.options = options
        self.validator = Validator(options.max_example_tokens)

    def batch(self, conversations: list[StoredConversation]) -> _Batch:
        """Stage ``conversations``; a staged line is a JSON header ``[conversation id, user
        text, [facts per example]]`` then each example's final JSON line, separated by tabs
        (JSON text never holds a raw tab or newline)."""
        totals = _Collected()
        lines = []
        for conversation in conversations:
            staged = self._stage(conversation, totals)
            if staged is not None:
                lines.append(staged)
        return _Batch(totals, lines)

    def _stage(
        self, conversation: StoredConversation, totals: _Collected
    ) -> tuple[str, str] | None:
        options = self.options
        totals.read += 1
        reason = keep_conversation(conversation, options.filters)
        if reason:
            totals.skipped[reason] += 1
            return None
        if options.redact:
            redactor = Redactor()
            conversation = redact_conversation(conversation, redactor)
            totals.redactions.update(redactor.counts)
            totals.redacted_conversations += bool(redactor.counts)
        examples = build_examples(conversation, options.filters, options.examples)
        if not examples:
            totals.skipped["no_examples"] += 1
            return None
        if len(totals.preview) < options.preview:
            totals.preview += [(m.id, m.role, m.content) for m in conversation.messages]
            del totals.preview[options.preview :]
        split = assign(conversation.id, conversation.pinned_split, options.plan)
        totals.staged[split] += 1
        facts = [self.validator.facts(example).to_json() for example in examples]
        header = json.dumps([conversation.id, dedup_text(conversation), facts], ensure_ascii=False)
        lines = [json.dumps(example, ensure_ascii=False) for example in examples]
        return split, "\t".join([header, *lines]) + "\n"


# conversations per batch read from the database and staged as one piece of work
BATCH = 1000
# exports of at least this many conversations stage them in worker processes (when allowed)
PARALLEL_FROM = 20_000
_worker: tuple[sessionmaker[Session], _Stager] | None = None


def _start_worker(url: str, options: ExportOptions) -> None:
    """In a worker process: its own database engine and stager."""
    global _worker
    from chatbot.db.session import make_engine, make_sessionmaker

    _worker = (make_sessionmaker(make_engine(url)), _Stager(options))


def _stage_in_worker(keys: list[ConversationKey]) -> _Batch:
    """In a worker process: read one batch of conversations and stage it."""
    assert _worker is not None, "worker not started"
    sessions, stager = _worker
    with sessions() as session:
        conversations = conversations_of(session=session, keys=keys)
    return stager.batch(conversations)


def _workers(sessions: sessionmaker[Session], options: ExportOptions, session: Session) -> int:
    """Worker processes for pass one: none for small exports or an in-memory database."""
    wanted = options.workers or min(2, os.cpu_count() or 1)
    engine = sessions.kw.get("bind")
    url = getattr(engine, "url", None)
    if wanted <= 1 or url is None or url.database in (None, "", ":memory:"):
        return 0
    if not options.workers:  # automatic: only where starting processes pays off
        count = count_conversations(session=session, conditions=options.filters.sql())
        if count < PARALLEL_FROM:
            return 0
    return wanted


def _batches(
    sessions: sessionmaker[Session], session: Session, options: ExportOptions
) -> Iterator[_Batch]:
    """Staged batches in conversation order, from this process or from worker processes."""
    keys = iter_conversation_keys(session=session, conditions=options.filters.sql(), batch=BATCH)
    workers = _workers(sessions, options, session)
    if not workers:
        stager = _Stager(options)
        for batch in keys:
            yield stager.batch(conversations_of(session=session, keys=batch))
        return
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(
        workers, get_context("spawn"), initializer=_start_worker, initargs=(url, options)
    )
    pending: deque[Future[_Batch]] = deque()
    try:
        for batch in keys:  # a few batches in flight: memory stays flat
            pending.append(pool.submit(_stage_in_worker, batch))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(
    sessions: sessionmaker[Session],
    options: ExportOptions,
    staging: Path,
    progress: Callable[[int], None],
) -> _Collected:
    """Pass one: stream conversations into per-split staging files of redacted examples."""
    totals = _Collected()
    outs = {s: (staging / f"{s}.jsonl").open("w", encoding="utf-8") for s in SPLITS}
    try:
        with sessions() as session:
            for batch in _batches(sessions, session, options):
                totals.merge(batch.totals, options.preview)
                for split, line in batch.lines:
                    outs[split].write(line)
                progress(batch.totals.read)
    finally:
        for out in outs.values():
            out.close()
    return totals


@dataclass(frozen=True)
class _Staged:
    """One staged conversation: its id, user text, examples' facts and final JSON lines."""

    id: str
    text: str
    facts: list[list[Any]]
    lines: list[str]


def _staged(path: Path, batch: int = 256) -> Iterator[list[_Staged]]:
    """Staged conversations of one split, in batches."""

    def read(line: str) -> _Staged:
        header, *lines = line.rstrip("\n").split("\t")
        cid, text, facts = json.loads(header)
        return _Staged(cid, text, facts, lines)

    with path.open(encoding="utf-8") as lines:
        yield from batched((read(line) for line in lines), batch)


class _Writer:
    """Pass two: final files per split, lineage items, near-duplicate moves, and each file's
    validation from the staged facts (no file is read back)."""

    def __init__(self, files: dict[str, HashedFile], lineage: Lineage, validator: Validator):
        self.files = files
        self.lineage = lineage
        self.moved = 0
        self.examples: Counter[str] = Counter()
        self.validator = validator
        self.results = {split: FileResult(str(f.path), split) for split, f in files.items()}
        self._seen: dict[str, set[bytes]] = {split: set() for split in files}
        self._held: TextIO | None = (
            None  # held-out facts, applied once every training prompt is known
        )

    def put(self, item: _Staged, split: str) -> None:
        out = self.files.get(split)
        if out is None:  # single-file mode: held-out conversations are not exported
            return
        for line, facts in zip(item.lines, item.facts, strict=True):
            out.write_line(line)
            if split == "train":
                found = Facts.from_json(facts)
                self.validator.apply(found, out.lines, self.results[split], self._seen[split])
            elif self._held is not None:
                self._held.write(json.dumps([split, out.lines, facts]) + "\n")
        self.examples[split] += len(item.lines)
        self.lineage.add(item.id, split)

    def run(self, staging: Path, dups: NearDuplicates | ExactDuplicates) -> None:
        held = staging / "held_out_facts.jsonl"
        with held.open("w", encoding="utf-8") as self._held:
            for split in ("test", "validation"):
                for items in _staged(staging / f"{split}.jsonl"):
                    moved = dups.add(split, [item.text for item in items])
                    for item, move in zip(items, moved, strict=True):
                        self.moved += move
                        self.put(item, "test" if move else split)
            for items in _staged(staging / "train.jsonl"):
                found = dups.classify([item.text for item in items])
                for item, in_held in zip(items, found, strict=True):
                    self.moved += in_held is not None
                    self.put(item, in_held or "train")
        self._held = None
        with held.open(encoding="utf-8") as lines:  # split overlap needs the whole train file
            for record in lines:
                split, number, facts = json.loads(record)
                result = self.results[split]
                self.validator.apply(Facts.from_json(facts), number, result, self._seen[split])
        for result in self.results.values():
            self.validator.finish(result)


def _outputs(out: Path, options: ExportOptions, staged: Counter[str]) -> dict[str, HashedFile]:
    """The files to write: one file, or train/validation (+ test when there is one)."""
    if options.single_file:
        out.parent.mkdir(parents=True, exist_ok=True)
        return {"train": HashedFile(out)}
    if out.suffix == ".jsonl":
        raise InputError(f"{out} looks like a file; give a folder for split exports (or no split)")
    out.mkdir(parents=True, exist_ok=True)
    splits = ["train", "validation"]
    if options.plan.test > 0 or staged["test"]:
        splits.append("test")
    for stale in set(SPLITS) - set(splits):  # from an earlier export into the same folder
        (out / f"{stale}.jsonl").unlink(missing_ok=True)
    return {s: HashedFile(out / f"{s}.jsonl") for s in splits}


def _duplicates(options: ExportOptions, encode_factory: Callable[[], Encode] | None, staged):
    """Near-duplicate finder: the embedder when asked for and needed, else exact matching."""
    held_out = sum(staged[s] for s in HELD_OUT)
    if options.near_duplicates and encode_factory is not None and held_out:
        return NearDuplicates(encode_factory(), options.threshold), "embedder"
    return ExactDuplicates(), "exact"


def run_export(
    *,
    sessions: sessionmaker[Session],
    out: Path,
    options: ExportOptions,
    encode_factory: Callable[[], Encode] | None = None,
    created_by: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
    pii: PiiSettings | None = None,
    pii_progress: Callable[[int], None] = lambda n: None,
) -> ExportResult:
    """Export to ``out`` (a folder, or a ``.jsonl`` file in single-file mode); record lineage.

    With ``pii`` settings, messages stored without detected spans are detected first (and
    their spans kept); otherwise only stored spans and the regex layer redact.
    """
    if options.single_file:  # everything not pinned elsewhere is training data
        options = replace(options, plan=SplitPlan(0.0, 0.0, options.plan.seed))
    with sessions.begin() as session:
        gather_statistics(session=session)
    detected = 0
    if options.redact and pii is not None:
        from chatbot.training.pii.backfill import backfill

        detected = sum(backfill(sessions, pii, progress=pii_progress).detected.values())
    validator = Validator(options.max_example_tokens)
    with tempfile.TemporaryDirectory(prefix="afina-export-") as tmp:
        collected = _collect(sessions, options, Path(tmp), progress)
        files = _outputs(out, options, collected.staged)
        dups, method = _duplicates(options, encode_factory, collected.staged)
        try:
            with sessions.begin() as session:
                user_id = None
                if created_by:
                    user_id = store.ensure_user(session=session, username=created_by).id
                lineage = Lineage.start(
                    session,
                    created_by=user_id,
                    format=options.examples.format,
                    filters=options.lineage(),
                    seed=options.plan.seed,
                    redacted=options.redact,
                    pin_test=options.pin_test,
                )
                writer = _Writer(files, lineage, validator)
                writer.run(Path(tmp), dups)
                hashes = {f.path.name: f.commit() for f in files.values()}
                report = _report(options, files, collected, writer, method)
                if options.redact and pii is not None:
                    report["redaction"]["detected_at_export"] = detected
                counts = {
                    "conversations_read": collected.read,
                    "skipped": dict(collected.skipped),
                    "conversations": dict(lineage.conversations),
                    "examples": dict(writer.examples),
                }
                report["counts"] = counts
                lineage.finish(counts=counts, files=hashes, report=report)
        except BaseException:
            for f in files.values():
                f.discard()
            raise
    text = render_text(report)
    if not options.single_file:
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    paths = {split: f.path for split, f in files.items()}
    return ExportResult(lineage.export_id, paths, report, text, collected.preview)


def _report(
    options: ExportOptions,
    files: dict[str, HashedFile],
    collected: _Collected,
    writer: _Writer,
    method: str,
) -> dict[str, Any]:
    """The report, with each file's validation (made from the staged facts as it was written)."""
    results = [writer.results[split] for split in files]
    redaction = {
        "enabled": options.redact,
        "counts": dict(collected.redactions),
        "conversations": collected.redacted_conversations,
    }
    splits = {
        "seed": options.plan.seed,
        "fractions": {"validation": options.plan.validation, "test": options.plan.test},
        "conversations": dict(writer.lineage.conversations),
        "examples": dict(writer.examples),
        "near_duplicates_moved": writer.moved,
        "duplicate_detection": method,
        "threshold": options.threshold if method == "embedder" else None,
    }
    return build_report(
        results,
        model=options.model,
        max_tokens=options.max_example_tokens,
        price_per_million=options.price_per_million,
        redaction=redaction,
        splits=splits,
    )


def validate_paths(paths: list[Path], max_tokens: int) -> list:
    """Validate files: the first (or a folder's train.jsonl) is the training file."""
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        paths = [folder / f"{s}.jsonl" for s in SPLITS if (folder / f"{s}.jsonl").exists()]
        if not paths:
            raise InputError(f"{folder} holds no train/validation/test .jsonl files")
    validator = Validator(max_tokens)
    kinds = ["train"] + [_kind(p) for p in paths[1:]]
    return [validator.validate(p, kind) for p, kind in zip(paths, kinds, strict=True)]


def _kind(path: Path) -> str:
    """validation or test, from a held-out file's name."""
    return "test" if path.stem.startswith("test") else "validation"
