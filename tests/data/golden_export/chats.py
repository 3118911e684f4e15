"""A small fixed database of support chats for export tests (rows written through the models).

Covers what the exporter must handle: ratings, corrections, failed turns, personal data,
provenance system prompts, an excluded chat, a pinned test chat, Spanish, near-duplicates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chatbot.db.models import Conversation, Correction, Feedback, Message, User

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FEWSHOT_SYSTEM = "You are the demo shop's assistant. Answer from the help centre."
FAQ = [
    ("How much does shipping cost?", "Shipping is free on orders over 50 euros; otherwise 4.95."),
    ("How do I return an item?", "Start a return from Orders within 30 days; the label is free."),
    ("I forgot my password", "Click 'Forgot password' on the login page and follow the e-mail."),
    ("Where is my order?", "Open Orders and click Track: you will see the courier's status."),
    ("Can I change my delivery address?", "Yes, until the order ships: Orders > Edit address."),
    ("Do you ship abroad?", "We ship to the EU, the UK and Switzerland."),
    ("How do I cancel my order?", "Orders > Cancel, as long as it has not shipped yet."),
    ("Which payment methods do you accept?", "Cards, PayPal and bank transfer."),
    ("Is there a warranty?", "Two years on every product, from the delivery date."),
    ("How long does delivery take?", "Two to four working days in the EU."),
    ("Can I pay in instalments?", "Yes, in three instalments for orders over 100 euros."),
    ("Do you have a shop I can visit?", "No, we only sell online."),
]


def _conversation(session, cid: str, user: User, n: int, **fields: Any) -> Conversation:
    """A conversation created ``n`` hours after START."""
    conversation = Conversation(
        id=cid,
        user_id=user.id,
        title=cid,
        created_at=START + timedelta(hours=n),
        updated_at=START + timedelta(hours=n),
        **fields,
    )
    session.add(conversation)
    return conversation


def _turns(session, conversation: Conversation, turns: list[tuple[str, str, dict]]) -> list[str]:
    """Messages one second apart; returns their ids."""
    ids = []
    for i, (role, content, fields) in enumerate(turns):
        mid = f"{conversation.id}-m{i}"
        extra = {"backend_name": "faq"} if role == "assistant" else {}
        session.add(
            Message(
                id=mid,
                conversation_id=conversation.id,
                role=role,
                content=content,
                created_at=conversation.created_at + timedelta(seconds=i),
                **{**extra, **fields},
            )
        )
        ids.append(mid)
    return ids


def seed(session) -> dict[str, str]:
    """Write the fixed chats; returns a few ids tests refer to."""
    agent = User(username="ana", role="agent")
    admin = User(username="root", role="admin")
    session.add_all([agent, admin])
    session.flush()
    up = lambda mid: Feedback(message_id=mid, user_id=admin.id, value=1)  # noqa: E731
    down = lambda mid: Feedback(message_id=mid, user_id=admin.id, value=-1)  # noqa: E731
    for n, (question, answer) in enumerate(FAQ):
        c = _conversation(session, f"faq-{n:02d}", agent, n)
        ids = _turns(session, c, [("user", question, {}), ("assistant", answer, {})])
        if n % 3 == 0:
            session.flush()
            session.add(up(ids[1]))
    h = len(FAQ)
    c = _conversation(session, "multi", agent, h)
    ids = _turns(
        session,
        c,
        [
            ("user", "Hi, my parcel did not arrive", {}),
            ("assistant", "Sorry to hear that! What is your order number?", {}),
            ("user", "It is 12345, and my e-mail is jane.doe@example.com", {}),
            (
                "assistant",
                "Thanks. I sent a tracking link to jane.doe@example.com.",
                {"backend_name": "fewshot", "details": {"system_prompt": FEWSHOT_SYSTEM}},
            ),
        ],
    )
    session.flush()
    session.add(up(ids[3]))
    c = _conversation(session, "downvoted", agent, h + 1)
    ids = _turns(session, c, [("user", "Can I pay with crypto?", {}), ("assistant", "Yes.", {})])
    session.flush()
    session.add(down(ids[1]))
    c = _conversation(session, "corrected", agent, h + 2)
    ids = _turns(session, c, [("user", "Do you price match?", {}), ("assistant", "Always!", {})])
    session.flush()
    session.add(down(ids[1]))
    session.add(
        Correction(
            message_id=ids[1], user_id=admin.id, content="No, but we refund price drops in 14 days."
        )
    )
    c = _conversation(session, "pii", agent, h + 3)
    _turns(
        session,
        c,
        [
            (
                "user",
                "Refund to card 4111 1111 1111 1111 or IBAN DE89 3704 0044 0532 0130 00, "
                "call +34 612 345 678, my IP is 192.168.1.20, "
                "link https://shop.example/reset?token=s3cr3tT0ken&x=1",
                {},
            ),
            ("assistant", "I have noted the refund details and will call you.", {}),
        ],
    )
    c = _conversation(session, "failed", agent, h + 4)
    _turns(
        session,
        c,
        [
            ("user", "Is the blue jacket in stock?", {}),
            ("assistant", "Something went wrong.", {"error": "BackendError: upstream 503"}),
            ("user", "Is the blue jacket in stock? (again)", {}),
            ("assistant", "Yes, in sizes S to L.", {}),
        ],
    )
    c = _conversation(session, "excluded", agent, h + 5, exclude_from_training=True)
    _turns(session, c, [("user", "secret internal chat", {}), ("assistant", "ok", {})])
    c = _conversation(session, "spanish", agent, h + 6, locale="es")
    _turns(
        session,
        c,
        [("user", "¿Cuánto cuesta el envío?", {}), ("assistant", "Gratis desde 50 euros.", {})],
    )
    c = _conversation(session, "pinned", admin, h + 7, pinned_split="test")
    _turns(
        session,
        c,
        [("user", "How much does shipping cost?", {}), ("assistant", "Free over 50 euros.", {})],
    )
    session.flush()
    return {"multi": "multi", "pinned": "pinned", "excluded": "excluded"}
