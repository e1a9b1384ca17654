"""approved periods: each approval's snapshot and the causes of its restatement

Revision ID: 0015_approvals
Revises: 0003
Written by the activity cube's projection (`reporting-activities`), which applies
`period.approved` in stream order: no rebuild is needed, a stream without approvals leaves
both tables empty.

Create Date: 2026-12-07 20:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_approvals'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approvals',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('scope_key', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=True),
    sa.Column('date_from', sa.Date(), nullable=False),
    sa.Column('date_to', sa.Date(), nullable=False),
    sa.Column('as_of', sa.BigInteger(), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_on', sa.Date(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvals_scope_key'), ['scope_key'], unique=False)
    op.create_table('approval_causes',
    sa.Column('approval_id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('approval_id', 'event_id')
    )


def downgrade() -> None:
    op.drop_table('approval_causes')
    op.drop_table('approvals')
