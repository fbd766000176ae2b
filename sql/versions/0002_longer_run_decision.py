"""longer run decision: a decision names every failed gate check or the reviewer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("retune_runs") as batch:
        batch.alter_column("decision", type_=sa.String(length=500), existing_type=sa.String(length=40))


def downgrade() -> None:
    with op.batch_alter_table("retune_runs") as batch:
        batch.alter_column("decision", type_=sa.String(length=40), existing_type=sa.String(length=500))
