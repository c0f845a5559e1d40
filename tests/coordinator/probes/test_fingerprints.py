"""The committed fingerprints: tied to the catalogue weights, drawn like any consumer request."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coordinator.catalogue import Catalogue
from coordinator.probes.authenticity_settings import PlausibilityTolerances
from coordinator.probes.fingerprint_data import (
    FINGERPRINT_PROMPTS,
    FingerprintMismatch,
    fingerprint_path,
    load_fingerprint,
)
from coordinator.probes.fingerprints import FingerprintSource
from protocol import catalogue
from protocol.ids import ModelId

MODEL = ModelId("gemma-3-270m")


def test_every_catalogue_model_carries_a_fingerprint_of_its_exact_weights() -> None:
    for priced in Catalogue.default():
        assert priced.fingerprint is not None, priced.id
        assert priced.fingerprint.weights_sha256 in {w.sha256 for w in priced.model.weights}
        assert [a.messages[-1].content for a in priced.fingerprint.answers] == list(
            FINGERPRINT_PROMPTS
        )
        for answer in priced.fingerprint.answers:
            assert answer.params.temperature == 0.0
            assert len(answer.tokens) >= 8
            assert all(t.token_id is not None and len(t.top) == 5 for t in answer.tokens)


def test_a_fingerprint_of_other_weights_is_refused(tmp_path: Path) -> None:
    model = catalogue.by_id(MODEL)
    assert model is not None
    stored = fingerprint_path(MODEL).read_text()
    fake = stored.replace(model.weights[0].sha256, "0" * 64)
    fingerprint_path(MODEL, tmp_path).write_text(fake)
    with pytest.raises(FingerprintMismatch):
        load_fingerprint(model, tmp_path)
    assert load_fingerprint(model, tmp_path / "none") is None


def test_the_source_draws_consumer_shaped_probes_for_its_share() -> None:
    priced = Catalogue.default().get(MODEL)
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
    from coordinator.probes.authenticity_settings import AuthenticitySettings
    from coordinator.probes.fingerprints import fingerprint_source

    source = fingerprint_source(
        Catalogue.default(), AuthenticitySettings(fingerprint_share=1.0), lambda _: None
    )
    assert source.draw(MODEL, random.Random(1)) is not None
