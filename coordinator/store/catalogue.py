"""The catalogue's rows: every model the network serves, its prices and its fingerprint.

A row whose stored model no longer reads (written by a newer coordinator, or edited by hand) is
skipped with a warning rather than stopping every other model from loading.
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import delete, func, select

from coordinator.catalogue import Catalogue, Price, PricedModel
from coordinator.store.database import Database
from coordinator.store.models import CatalogueEntry
from protocol.catalogue import CatalogueModel
from protocol.fingerprint import Fingerprint

log = logging.getLogger(__name__)


class CatalogueConflict(ValueError):
    """The model id is taken (add) or absent (remove, set-price)."""


async def load_catalogue(database: Database) -> list[PricedModel]:
    async with database.session() as session:
        rows = (await session.scalars(select(CatalogueEntry).order_by(CatalogueEntry.id))).all()
    models = []
    for row in rows:
        try:
            models.append(_priced(row))
        except ValidationError as exc:
            log.warning("catalogue model %r does not read and is left out: %s", row.id, exc)
    return models


def _priced(row: CatalogueEntry) -> PricedModel:
    model = CatalogueModel.model_validate(row.model)
    fingerprint = (
        None if row.fingerprint is None else Fingerprint.model_validate(row.fingerprint)
    )
    return PricedModel(
        model, Price(row.price_input_per_1m, row.price_output_per_1m), fingerprint
    )


async def add_model(
    database: Database, model: CatalogueModel, price: Price, fingerprint: Fingerprint | None,
    now: datetime, *, replace: bool = False,
) -> None:
    async with database.session() as session, session.begin():
        row = await session.get(CatalogueEntry, model.id)
        if row is not None and not replace:
            raise CatalogueConflict(f"{model.id!r} is already in the catalogue (--replace)")
        if row is None:
            row = CatalogueEntry(id=model.id, added_at=now)
            session.add(row)
        row.model = model.model_dump(mode="json")
        row.price_input_per_1m = price.input_per_1m
        row.price_output_per_1m = price.output_per_1m
        row.fingerprint = None if fingerprint is None else fingerprint.model_dump(mode="json")
        row.updated_at = now


async def remove_model(database: Database, model_id: str) -> None:
    async with database.session() as session, session.begin():
        removed = await session.execute(
            delete(CatalogueEntry).where(CatalogueEntry.id == model_id)
        )
        if not removed.rowcount:  # type: ignore[attr-defined]
            raise CatalogueConflict(f"{model_id!r} is not in the catalogue")


async def set_price(database: Database, model_id: str, price: Price, now: datetime) -> None:
    async with database.session() as session, session.begin():
        row = await session.get(CatalogueEntry, model_id)
        if row is None:
            raise CatalogueConflict(f"{model_id!r} is not in the catalogue")
        row.price_input_per_1m = price.input_per_1m
        row.price_output_per_1m = price.output_per_1m
        row.updated_at = now


async def catalogue_version(database: Database) -> tuple[int, datetime | None]:
    """What changes whenever a model is added, removed or changed: read before a full reload."""
    async with database.session() as session:
        count, latest = (await session.execute(
            select(func.count(), func.max(CatalogueEntry.updated_at))
        )).one()
    return int(count), latest


async def reload_catalogue(database: Database, catalogue: Catalogue) -> None:
    """Bring the in-memory catalogue up to the database's (only read whole when it changed)."""
    version = await catalogue_version(database)
    if version != catalogue.version:
        catalogue.replace(await load_catalogue(database))
        catalogue.version = version
