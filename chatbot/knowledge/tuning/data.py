"""Training and validation data for embedder tuning: KB phrasing pairs, chat questions, hard
negatives, a validation split by entry, and the top-1 the index's scoring rule would give."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.retrieval.index import SCORED_PHRASINGS, Entry
from chatbot.db.tuning_queries import LabelledQuestion

Encode = Callable[[list[str]], np.ndarray]  # texts -> L2-normalized rows
CHAT_POSITIVES = 4  # phrasings of its entry a chat question is paired with
MAX_POSITIVES = 5  # other phrasings of its entry a KB phrasing is paired with
ALIAS_POSITIVES = 1  # other-language phrasings of its entry a KB phrasing is paired with


@dataclass(frozen=True)
class Pair:
    """An (anchor, positive) pair of one entry; ``negative`` is filled by ``mine_negatives``."""

    anchor: str
    positive: str
    entry: str
    source: str  # "kb" | "chat"
    negative: str = ""
    negative_entry: str = ""


@dataclass
class TuneData:
    """What one tuning run learns from and is measured on."""

    phrasings: dict[str, tuple[str, ...]]  # entry id -> its phrasings (every FAQ entry)
    train_entries: list[str]
    val_entries: list[str]
    train: list[Pair]
    validation: list[tuple[str, str]]  # (query, entry id): held-out entries only
    conversations: list[str] = field(default_factory=list)  # chats whose questions were used
    chat_counts: Counter = field(default_factory=Counter)


def faq_phrasings(entries: Sequence[Entry]) -> dict[str, tuple[str, ...]]:
    """Entry id -> phrasings of the FAQ entries (articles are not question phrasings)."""
    return {e.id: e.texts for e in entries if e.kind == "query" and e.texts}


def split_entries(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation) entry ids: ``fraction`` of the entries held out with all their
    phrasings (at least one when there are 4+ entries; at least 2 stay for training)."""
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    held = round(len(ordered) * fraction)
    if fraction > 0 and len(ordered) >= 4:
        held = max(held, 1)
    held = max(0, min(held, len(ordered) - 2))
    return sorted(ordered[held:]), sorted(ordered[:held])


def build_data(
    entries: Sequence[Entry],
    questions: Sequence[LabelledQuestion],
    encode: Encode,
    *,
    validation_fraction: float,
    correction_min_similarity: float,
    seed: int,
) -> TuneData:
    """Pairs of phrasings of the same entry, plus chat questions -> their entry's phrasings.

    An approved answer labels its question with the answer's first source. A corrected answer
    labels it with the entry whose answer is nearest to the correction under the current model,
    when at least ``correction_min_similarity`` similar; otherwise the correction is new
    knowledge (it belongs in the knowledge base, not the embedder) and the chat is skipped.
    """
    phrasings = faq_phrasings(entries)
    answers = {e.id: e.answer for e in entries if e.id in phrasings}
    views = {e.id: e for e in entries if e.id in phrasings and e.aliases}
    train_ids, val_ids = split_entries(list(phrasings), validation_fraction, seed)
    data = TuneData(phrasings, train_ids, val_ids, [], [])
    held = set(val_ids)
    rng = random.Random(seed)
    for entry in train_ids:
        texts = phrasings[entry]
        for anchor in texts:
            others = [t for t in texts if t != anchor]
            if len(others) > MAX_POSITIVES:  # large entries (e.g. intents with 100+ examples)
                others = rng.sample(others, MAX_POSITIVES)
            data.train += [Pair(anchor, p, entry, "kb") for p in others]
            data.train += _view_pairs(anchor, entry, views.get(entry), rng)
    for entry in val_ids:
        data.validation += [(t, entry) for t in phrasings[entry]]
    labelled = _label_chats(questions, answers, encode, correction_min_similarity, data)
    seen: set[tuple[str, str]] = set()
    for item, entry in labelled:
        if (item.question, entry) in seen:
            data.chat_counts["duplicate"] += 1
            continue
        seen.add((item.question, entry))
        data.conversations.append(item.conversation_id)
        if entry in held:
            data.validation.append((item.question, entry))
            data.chat_counts["validation"] += 1
            continue
        positives = list(phrasings[entry])
        rng.shuffle(positives)
        data.train += [Pair(item.question, p, entry, "chat") for p in positives[:CHAT_POSITIVES]]
        data.chat_counts["train"] += 1
    data.conversations = sorted(set(data.conversations))
    return data


def _view_pairs(anchor: str, entry: str, views: Entry | None, rng: random.Random) -> list[Pair]:
    """For an entry of a cross-lingual index (one with aliases), ``anchor`` paired with one of
    the entry's other-language phrasings, a view that index scores too."""
    if views is None:
        return []
    aliases = rng.sample(list(views.aliases), min(ALIAS_POSITIVES, len(views.aliases)))
    return [Pair(anchor, p, entry, "kb") for p in aliases]


def _label_chats(
    questions: Sequence[LabelledQuestion],
    answers: dict[str, str],
    encode: Encode,
    min_similarity: float,
    data: TuneData,
) -> list[tuple[LabelledQuestion, str]]:
    """(question, entry id) for each usable chat question; skips are counted on ``data``."""
    labelled = []
    corrected = [q for q in questions if q.correction is not None]
    nearest: dict[int, tuple[str, float]] = {}
    if corrected and answers:
        ids = list(answers)
        sims = encode([q.correction or "" for q in corrected]) @ encode(list(answers.values())).T
        for i, row in enumerate(sims):
            nearest[id(corrected[i])] = (ids[int(row.argmax())], float(row.max()))
    for q in questions:
        if q.correction is None:
            if q.entry_id in answers:
                labelled.append((q, q.entry_id or ""))
                data.chat_counts["approved"] += 1
            else:
                data.chat_counts["skipped: source not an FAQ entry of this language"] += 1
            continue
        entry, similarity = nearest.get(id(q), ("", 0.0))
        if entry and similarity >= min_similarity:
            labelled.append((q, entry))
            data.chat_counts["corrected"] += 1
        else:
            data.chat_counts["skipped: correction matches no entry's answer"] += 1
    return labelled


def mine_negatives(
    pairs: list[Pair], phrasings: dict[str, tuple[str, ...]], encode: Encode, chunk: int = 1024
) -> list[Pair]:
    """Each pair with a hard negative: the phrasing of ANOTHER training entry most similar to
    its anchor under the current model (pairs are returned unchanged with one entry)."""
    entries = sorted({p.entry for p in pairs})
    if len(entries) < 2 or not pairs:
        return pairs
    number = {e: i for i, e in enumerate(entries)}
    rows = [(t, e) for e in entries for t in phrasings[e]]
    row_entry = np.array([number[e] for _, e in rows])
    texts = list(dict.fromkeys([p.anchor for p in pairs] + [t for t, _ in rows]))
    vectors = dict(zip(texts, encode(texts), strict=True))  # each text encoded once
    catalog = np.stack([vectors[t] for t, _ in rows])
    mined = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        sims = np.stack([vectors[p.anchor] for p in part]) @ catalog.T
        own = row_entry[None, :] == np.array([number[p.entry] for p in part])[:, None]
        best = np.where(own, -np.inf, sims).argmax(axis=1)
        mined += [
            Pair(p.anchor, p.positive, p.entry, p.source, rows[b][0], rows[b][1])
            for p, b in zip(part, best, strict=True)
        ]
    return mined


def top1(
    queries: Sequence[tuple[str, str]], phrasings: dict[str, tuple[str, ...]], encode: Encode
) -> float | None:
    """Share of ``queries`` whose best entry is right, scored like the index (mean of an
    entry's two best phrasings), the query's own phrasing left out. None without queries."""
    if not queries:
        return None
    entries = [e for e in phrasings if phrasings[e]]
    texts = [t for e in entries for t in phrasings[e]]
    counts = np.array([len(phrasings[e]) for e in entries])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sims = encode([q for q, _ in queries]) @ encode(texts).T
    where: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        where.setdefault(t, []).append(i)
    for qi, (query, _) in enumerate(queries):
        sims[qi, where.get(query, [])] = -np.inf  # leave the query's own phrasing out
    best = np.maximum.reduceat(sims, starts, axis=1)
    rest = np.where(sims >= np.repeat(best, counts, axis=1), -np.inf, sims)
    second = np.maximum.reduceat(rest, starts, axis=1)
    scores = np.where(np.isfinite(second), (best + second) / 2, best)
    if SCORED_PHRASINGS != 2:
        raise NotImplementedError("top1 mirrors the index's two-phrasing score")
    picked = np.asarray(entries)[scores.argmax(axis=1)]
    return float(np.mean(picked == np.asarray([e for _, e in queries])))
