"""selection ledger: every search's trial population for the Deflated Sharpe Ratio; run verdicts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retune_selection_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_key", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("n_backtests", sa.Integer(), nullable=False),
        sa.Column("n_effective", sa.Float(), nullable=False),
        sa.Column("n_sharpes", sa.Integer(), nullable=False),
        sa.Column("sharpe_sum", sa.Float(), nullable=False),
        sa.Column("sharpe_sq_sum", sa.Float(), nullable=False),
        sa.Column("sr0", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_key", "run_id"),
    )
    with op.batch_alter_table("retune_runs") as batch:
        batch.add_column(sa.Column("verdict", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retune_runs") as batch:
        batch.drop_column("verdict")
    op.drop_table("retune_selection_ledger")
