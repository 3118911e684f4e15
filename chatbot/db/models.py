"""SQLAlchemy 2.0 typed models of Afina's data model; changed only with a migration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Microseconds on MySQL/MariaDB too, so messages keep their order within a second.
Timestamp = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def utcnow() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new UUID string (Chainlit uses the same form for threads and steps)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base with Alembic-friendly constraint names."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """A support agent or admin."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('agent', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # raised by logout, a password change and disabling: login cookies of older epochs are void
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Conversation(Base):
    """A chat between one user and Afina."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    exclude_from_training: Mapped[bool] = mapped_column(Boolean, default=False)
    # a split this conversation is pinned to (e.g. "test"): later exports keep it there
    pinned_split: Mapped[str | None] = mapped_column(String(16))
    # where the chat came from: "chat" (a person), "eval" (an evaluation run; never trained on,
    # never in an agent's history) or "demo" (`afina demo chats`)
    origin: Mapped[str] = mapped_column(String(16), default="chat", server_default="chat")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.created_at", passive_deletes=True
    )


class Message(Base):
    """One message; assistant rows carry the provenance of the reply."""

    __tablename__ = "messages"
    __table_args__ = (CheckConstraint("role IN ('system', 'user', 'assistant')", name="role"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # provenance (assistant rows)
    backend_name: Mapped[str | None] = mapped_column(String(64))
    backend_config_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    sources: Mapped[list[Any] | None] = mapped_column(JSON)
    index_version: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    run_step_id: Mapped[str | None] = mapped_column(String(36), index=True)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # the backend that failed when a fallback backend produced this answer
    fallback_from: Mapped[str | None] = mapped_column(String(64))
    # backend-specific provenance, e.g. few-shot example-set version, grounded sources
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # None = complete; "partial" = an answer cut off while streaming (what the user saw);
    # "interrupted" = a question the server stopped answering (a crash), marked on the next start
    status: Mapped[str | None] = mapped_column(String(16))
    # personal data in ``content``: [{start, end, type, score, source}] (source "admin" = marked
    # by hand); pii_version = the detector version that checked it (None = not checked yet)
    pii_spans: Mapped[list[Any] | None] = mapped_column(JSON)
    pii_version: Mapped[int | None] = mapped_column(SmallInteger)
    # an admin's review on /admin/review: "approved" (a training target, corrected or not) or
    # "rejected" (neither the answer nor its correction is one); None = not reviewed, or
    # corrected again since
    review_status: Mapped[str | None] = mapped_column(String(16))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Feedback(Base):
    """A user's rating of an assistant message."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("message_id", "user_id", name="uq_feedback_message_user"),
        CheckConstraint("value IN (-1, 1)", name="value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    value: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Correction(Base):
    """A better answer written by an agent: the gold label for training."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # personal data in ``content``, as on messages
    pii_spans: Mapped[list[Any] | None] = mapped_column(JSON)
    pii_version: Mapped[int | None] = mapped_column(SmallInteger)


class BackendRecord(Base):
    """A named backend instance: a kind and its config."""

    __tablename__ = "backends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class AppSetting(Base):
    """An app-wide setting changed at run time (e.g. the active backend), with who and when."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Export(Base):
    """One training-data export: who, when, with which filters, and what it produced."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    format: Mapped[str] = mapped_column(String(16))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # file name -> sha256 of its content
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    redacted: Mapped[bool] = mapped_column(Boolean, default=True)
    seed: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ExportItem(Base):
    """Which conversation went to which split of an export (kept if the chat is deleted)."""

    __tablename__ = "export_items"

    export_id: Mapped[int] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    split: Mapped[str] = mapped_column(String(16))


FINETUNE_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class FinetuneJob(Base):
    """One fine-tuning job, local or remote: what it trained on, how it went, what it made.

    Lineage: an answer's ``messages.backend_name`` -> ``backends`` -> ``finetune_jobs.backend_name``
    -> ``export_id`` -> ``export_items`` -> the conversations it learned from.
    """

    __tablename__ = "finetune_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # "local" (CPU, bundled SmolLM2) or "openai" (any OpenAI-compatible jobs API)
    provider: Mapped[str] = mapped_column(String(32))
    base_model: Mapped[str] = mapped_column(String(255))
    # remote providers: endpoint and the NAME of the variable holding the key (never the key)
    base_url: Mapped[str | None] = mapped_column(String(512))
    api_key_env: Mapped[str | None] = mapped_column(String(128))
    suffix: Mapped[str | None] = mapped_column(String(64))
    # e.g. "lora", "full" (local) or "supervised", "dpo" (remote)
    method: Mapped[str] = mapped_column(String(32), default="lora")
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    export_id: Mapped[int | None] = mapped_column(
        ForeignKey("exports.id", ondelete="SET NULL"), index=True
    )
    # file name -> sha256 of the export files it trained on, as they were when it started
    export_files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # asked to stop by `afina finetune cancel` (another process); the runner honours it
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"step", "epoch", "train_loss", "val_loss", "at"}, ...] in order
    metrics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # [{"at", "level", "message"}, ...] in order (the provider's events for remote jobs)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    artefact_path: Mapped[str | None] = mapped_column(String(1024))
    artefact_sha256: Mapped[str | None] = mapped_column(String(64))
    remote_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    remote_model_id: Mapped[str | None] = mapped_column(String(255))
    # billed training tokens (remote) or tokens trained on (local); wall seconds of training
    trained_tokens: Mapped[int | None] = mapped_column(Integer)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # the backend registered on success
    backend_name: Mapped[str | None] = mapped_column(String(64), index=True)


class EvalRun(Base):
    """One evaluation: backends answering a question set (or held-out chats), and the summary."""

    __tablename__ = "eval_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'succeeded', 'failed', 'cancelled')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default="running")
    # {"questions": file name, "sha256": ...} or {"export_id": ..., "split": ...}
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    backends: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # judge backend and its prompt, bootstrap resamples, seed, volumes for the break-even
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # per backend: metrics with 95% confidence intervals; break-even
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class EvalResult(Base):
    """One backend's answer to one evaluation item, with its scores and provenance."""

    __tablename__ = "eval_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    backend_name: Mapped[str] = mapped_column(String(64))
    # the question's id in its set (or "<conversation id>:<turn>" for a replayed chat)
    item_key: Mapped[str] = mapped_column(String(128))
    question: Mapped[str] = mapped_column(LongText)
    language: Mapped[str | None] = mapped_column(String(16))
    in_scope: Mapped[bool] = mapped_column(Boolean, default=True)
    expected_entry: Mapped[str | None] = mapped_column(String(128))
    reference: Mapped[str | None] = mapped_column(LongText)
    answer: Mapped[str | None] = mapped_column(LongText)
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    message_id: Mapped[str | None] = mapped_column(String(36))
    handoff: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    fallback_from: Mapped[str | None] = mapped_column(String(64))
    # quality: right entry (retrieval), similarity to the reference, share of key facts, judge
    correct: Mapped[bool | None] = mapped_column(Boolean)
    similarity: Mapped[float | None] = mapped_column(Float)
    key_facts: Mapped[float | None] = mapped_column(Float)
    judge_score: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # provenance of the answer, so runs months apart can be compared
    backend_config_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    index_version: Mapped[str | None] = mapped_column(String(64))
    example_set: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
