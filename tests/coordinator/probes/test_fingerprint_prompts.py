"""Fingerprint prompts come from a secret: reproducible with it, unguessable without."""

from __future__ import annotations

from coordinator.probes.fingerprint_prompts import combinations, fingerprint_prompts
from coordinator.probes.prompts import USER_PROMPTS


def test_the_same_secret_model_and_epoch_give_the_same_prompts() -> None:
    assert fingerprint_prompts(b"s3cret", "m", 1) == fingerprint_prompts(b"s3cret", "m", 1)


def test_another_secret_epoch_or_model_gives_other_prompts() -> None:
    base = set(fingerprint_prompts(b"s3cret", "m", 1))
    for other in (fingerprint_prompts(b"other", "m", 1), fingerprint_prompts(b"s3cret", "m", 2),
                  fingerprint_prompts(b"s3cret", "n", 1)):
        assert len(base & set(other)) <= 1


def test_the_prompts_are_distinct_ordinary_requests_from_a_space_too_large_to_precompute() -> None:
    prompts = fingerprint_prompts(b"s3cret", "m", 7, count=50)
    assert len(set(prompts)) == 50
    assert all(20 < len(p) < 300 and p.strip() == p for p in prompts)
    assert not set(prompts) & set(USER_PROMPTS)
    assert combinations() > 10**10
