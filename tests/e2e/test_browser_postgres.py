"""The browser suite's core journeys again, with ``afina serve`` on a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _server_database
from tests.e2e.conftest import Server, running_server

# Collected here again, so they run against this module's PostgreSQL-backed server.
from tests.e2e.test_browser import (  # noqa: F401
    test_a_user_never_sees_another_users_conversation,
    test_admin_switches_backend_and_agents_next_answer_uses_it,
    test_agent_sees_streamed_answer_with_sources_and_backend,
    test_conversation_reopens_from_the_sidebar,
    test_correction_is_edited_under_the_answer_and_the_chat_stays_usable,
    test_handover_heading_follows_the_conversations_language,
    test_thumbs_up_with_comment_lands_in_database,
)
from tests.e2e.test_chat_session import (  # noqa: F401
    test_reload_after_answer_and_correction_reopens_the_same_conversation,
)
from tests.e2e.test_review import (  # noqa: F401
    test_admin_adds_resets_promotes_and_disables_a_user,
    test_admin_reviews_rejects_approves_excludes_and_downloads,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for this module, on a throw-away PostgreSQL database."""
    folder = tmp_path_factory.mktemp("web-pg")
    for url in _server_database("postgresql"):
        with running_server(folder, url) as running:
            yield running
