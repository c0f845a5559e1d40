"""What a node identity costs, decided: the daily limit of new nodes per account and the
offender window after one of the account's nodes was removed for faking its model."""

from __future__ import annotations

from datetime import timedelta

from coordinator.accounts.identity import EnrollmentLimits, enrollment_refusal
from coordinator.settings.identity import IdentitySettings

LIMITS = EnrollmentLimits(new_nodes_per_day=10, offender_window=timedelta(days=14))


def test_defaults_ask_for_enrollment_and_limit_new_nodes() -> None:
    settings = IdentitySettings()
    assert settings.paid_requires_enrollment
    assert settings.new_nodes_per_day_per_operator == 10


def test_an_account_enrolls_up_to_its_daily_limit() -> None:
    assert enrollment_refusal(0, False, LIMITS) is None
    assert enrollment_refusal(9, False, LIMITS) is None
    refusal = enrollment_refusal(10, False, LIMITS)
    assert refusal is not None and "tomorrow" in refusal


def test_an_account_whose_node_was_removed_enrolls_nothing_in_the_window() -> None:
    refusal = enrollment_refusal(0, True, LIMITS)
    assert refusal is not None and "14 days" in refusal and "removed" in refusal
