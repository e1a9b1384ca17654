"""needs: a need's events read before its submission are held (need_early), not parked

Revision ID: 0014_need_early
Revises: 0014_need_rates
Create Date: 2026-12-07 19:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014_need_early'
down_revision = '0014_need_rates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('need_early',
    sa.Column('need_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('envelope', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('need_id', 'seq')
    )


def downgrade() -> None:
    op.drop_table('need_early')
