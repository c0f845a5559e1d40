"""Fingerprints: a deployment's reference runs of the exact catalogue weights on secret prompts,
drawn like any consumer request."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.fingerprints import FINGERPRINTED, prompts_of, reference_fingerprint_now

from coordinator.catalogue import Catalogue
from coordinator.probes.fingerprint_run import compute_fingerprint
from coordinator.probes.fingerprints import FingerprintSource
from coordinator.probes.prompts import USER_PROMPTS
from coordinator.settings.authenticity import PlausibilityTolerances
from protocol import catalogue
from protocol.fingerprint import FingerprintMismatch
from protocol.ids import ModelId

MODEL = ModelId("gemma-3-270m")
REPO = Path(__file__).resolve().parents[3]


def fingerprinted() -> Catalogue:
    return Catalogue.default({m: reference_fingerprint_now(m) for m in FINGERPRINTED})


def test_a_reference_run_fingerprints_the_exact_weights_on_the_secret_prompts() -> None:
    for priced in fingerprinted():
        assert priced.fingerprint is not None, priced.id
        assert priced.fingerprint.weights_sha256 in {w.sha256 for w in priced.model.weights}
        prompts = [a.messages[-1].content for a in priced.fingerprint.answers]
        assert prompts == list(prompts_of(priced.id))
        assert not set(prompts) & set(USER_PROMPTS)  # not the ordinary pool's
        for answer in priced.fingerprint.answers:
            assert answer.params.temperature == 0.0
            assert len(answer.tokens) >= 8
            assert all(t.token_id is not None and len(t.top) == 5 for t in answer.tokens)


def test_no_fingerprint_ships_with_the_code() -> None:
    assert all(priced.fingerprint is None for priced in Catalogue.default())
    shipped = [p for p in (REPO / "coordinator").rglob("*.json")]
    assert not shipped, shipped


async def test_a_reference_run_of_other_weights_is_refused(smollm2_path: Path) -> None:
    model = catalogue.by_id(MODEL)
    assert model is not None
    with pytest.raises(FingerprintMismatch):
        await compute_fingerprint(model, smollm2_path, prompts_of(MODEL))


def test_the_source_draws_consumer_shaped_probes_for_its_share() -> None:
    priced = fingerprinted().get(MODEL)
    assert priced is not None and priced.fingerprint is not None
    source = FingerprintSource(
        {MODEL: priced.fingerprint}, PlausibilityTolerances(), lambda _: None, share=0.3
    )
    rng = random.Random(3)
    draws = [source.draw(MODEL, rng) for _ in range(400)]
    made = [d for d in draws if d is not None]
    assert 80 < len(made) < 160
    for draw in made:
        assert [m.role for m in draw.messages] == ["user"]
        assert draw.params.temperature == 0.0 and draw.params.stop == ()
        assert draw.params.seed is None and draw.judge is not None
    assert source.draw(ModelId("another-model"), rng) is None


def test_the_app_source_covers_every_fingerprinted_model() -> None:
    from coordinator.probes.fingerprints import fingerprint_source
    from coordinator.settings.authenticity import AuthenticitySettings

    source = fingerprint_source(
        fingerprinted(), AuthenticitySettings(fingerprint_share=1.0), lambda _: None
    )
    assert source.draw(MODEL, random.Random(1)) is not None
