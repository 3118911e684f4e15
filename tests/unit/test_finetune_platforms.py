"""Announced platform changes (a table, not code): warnings, refusals and backend flags by date."""

from __future__ import annotations

from datetime import date

import pytest

from chatbot.cli.backends import _notice
from chatbot.errors import InputError
from chatbot.settings import Settings, TrainingSettings
from chatbot.training.finetune.platforms import check_start, in_family, shutdown_flag
from chatbot.training.finetune.remote_data import backend_name_for, training_price

BEFORE = date(2026, 9, 1)  # months ahead: nothing to say
NEAR = date(2026, 12, 20)  # weeks before the stop
STOP = date(2027, 1, 6)  # OpenAI stops new fine-tuning jobs
SHUTDOWN = date(2027, 1, 14)  # gpt-4o and gpt-4.1 families (and their fine-tunes) shut down
OPENAI = "https://api.openai.com/v1"


def test_check_start_is_silent_months_ahead():
    assert check_start("openai", "gpt-4.1-mini-2025-04-14", BEFORE) is None


def test_check_start_warns_weeks_ahead_with_dates_and_alternatives():
    warning = check_start("openai", "gpt-4.1-mini-2025-04-14", NEAR)
    assert warning is not None
    assert "2027-01-06 (in 17 days)" in warning and "2027-01-14 (in 25 days)" in warning
    assert "--provider local" in warning and "--base-url" in warning


def test_check_start_refuses_from_the_stop_date_naming_the_alternatives():
    for today in (STOP, SHUTDOWN, date(2027, 6, 1)):
        with pytest.raises(InputError, match="stopped new fine-tuning jobs on 2027-01-06") as exc:
            check_start("openai", "gpt-4o-mini-2024-07-18", today)
        assert "--provider local" in str(exc.value) and "--base-url" in str(exc.value)


def test_check_start_leaves_other_providers_and_hosts_alone():
    assert check_start("local", "smollm2", STOP) is None
    other = "https://llm.example.com/v1"  # another OpenAI-compatible jobs API
    assert check_start("openai", "gpt-4o-mini-2024-07-18", STOP, base_url=other) is None
    with pytest.raises(InputError):
        check_start("openai", "gpt-4o-mini-2024-07-18", STOP, base_url=OPENAI)


def test_shutdown_flag_near_past_and_unaffected_models():
    fine_tune = "ft:gpt-4o-mini-2024-07-18:shop::abc"
    assert shutdown_flag(fine_tune, BEFORE) is None
    near = shutdown_flag(fine_tune, NEAR)
    assert near is not None and "shuts down on 2027-01-14 (in 25 days)" in near
    past = shutdown_flag(fine_tune, date(2027, 2, 1))
    assert past is not None and "was shut down on 2027-01-14" in past
    assert "afina backends use" in past
    assert shutdown_flag("ft:gpt-4.1-2025-04-14:shop::x", SHUTDOWN) is not None
    assert shutdown_flag("gpt-5-mini", SHUTDOWN) is None  # stop of new jobs only, no shutdown
    assert shutdown_flag(fine_tune, SHUTDOWN, base_url="http://127.0.0.1:8766/v1") is None


def test_model_families_match_whole_name_parts():
    assert in_family("gpt-4o-mini-2024-07-18", "gpt-4o")
    assert in_family("ft:gpt-4.1-nano-2025-04-14:org::id", "gpt-4.1")
    assert not in_family("gpt-4omega", "gpt-4o")
    assert not in_family("gpt-4.10", "gpt-4.1")


def test_backends_list_flags_a_registered_openai_fine_tune():
    settings = Settings()
    config = {"model": "ft:gpt-4o-mini-2024-07-18:shop::abc", "base_url": OPENAI}
    assert "2027-01-14" in _notice(settings, "finetuned", config)
    local = {"model": "ft:gpt-4o-mini-2024-07-18:shop::abc"}  # the local server by default
    assert _notice(settings, "finetuned", local) == ""
    assert _notice(settings, "retrieval", {}) == ""


def test_backend_name_for_a_model_id_is_safe_and_short():
    assert backend_name_for("ft:gpt-4o-mini-2024-07-18:org:shop:AbC1") == (
        "ft-gpt-4o-mini-2024-07-18-org-shop-AbC1"
    )
    long = "ft:" + "x" * 100 + ":org::id"
    name = backend_name_for(long)
    assert len(name) == 64 and name != backend_name_for(long + "2")


def test_training_price_takes_the_longest_listed_prefix():
    training = TrainingSettings()
    assert training_price(training, "gpt-4.1-mini-2025-04-14") == 5.0
    assert training_price(training, "gpt-4.1-2025-04-14") == 25.0
    assert training_price(training, "ft:gpt-4o-mini-2024-07-18:org::x") == 3.0
    assert training_price(training, "some-open-model") == training.price_per_million_tokens
