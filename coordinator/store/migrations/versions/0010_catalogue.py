"""The catalogue as data: models, prices and fingerprints in the database, seeded with the two
models the network started with.

Revision ID: 0010_catalogue
Revises: 0009_stored_responses
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010_catalogue"
down_revision = "0009_stored_responses"
branch_labels = None
depends_on = None

SEEDED = (
    {
        "id": "gemma-3-270m", "name": "Gemma 3 270M (Q4_K_M)", "chat_template": False,
        "context_length": 32768, "parameters": "270M", "architecture": "gemma3",
        "weights": [{
            "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            "filename": "gemma-3-270m-q4_k_m.gguf", "repo": None, "revision": None,
            "engine": "llama.cpp", "size_bytes": 253113024, "quantization": "Q4_K_M",
        }],
    },
    {
        "id": "smollm2-135m-instruct", "name": "SmolLM2 135M Instruct (Q4_1)",
        "chat_template": True, "context_length": 8192, "parameters": "135M",
        "architecture": "llama",
        "weights": [{
            "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "filename": "SmolLM2-135M-Instruct.Q4_1.gguf", "repo": None, "revision": None,
            "engine": "llama.cpp", "size_bytes": 98362432, "quantization": "Q4_1",
        }],
    },
)


def upgrade() -> None:
    table = op.create_table(
        "catalogue_models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.JSON, nullable=False),
        sa.Column("price_input_per_1m", sa.BigInteger, nullable=False),
        sa.Column("price_output_per_1m", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.JSON, nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("price_input_per_1m >= 0 AND price_output_per_1m >= 0",
                           name="catalogue_prices_not_negative"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(table, [
        {"id": model["id"], "model": model, "price_input_per_1m": 10,
         "price_output_per_1m": 20, "fingerprint": None, "added_at": now, "updated_at": now}
        for model in SEEDED
    ])


def downgrade() -> None:
    op.drop_table("catalogue_models")
