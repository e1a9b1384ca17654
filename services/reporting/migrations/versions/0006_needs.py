"""needs read model: each need's state, claimer, follow-up, and its history

Revision ID: 0006_needs
Revises: 0003
The projection replays the stream from the start to fill them (its position, if an earlier
stub of it ran, is forgotten).

Create Date: 2026-11-23 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_needs'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('need_items',
    sa.Column('need_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('pairing_id', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('urgency', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=True),
    sa.Column('claimer_id', sa.String(length=64), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hours_to_claim', sa.Float(), nullable=True),
    sa.Column('hours_to_resolve', sa.Float(), nullable=True),
    sa.Column('followup_assignee_id', sa.String(length=64), nullable=True),
    sa.Column('followup_due_on', sa.Date(), nullable=True),
    sa.Column('followup_note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('need_id')
    )
    with op.batch_alter_table('need_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_need_items_base_id'), ['base_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_need_items_claimer_id'), ['claimer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_need_items_day'), ['day'], unique=False)
        batch_op.create_index(batch_op.f('ix_need_items_pairing_id'), ['pairing_id'], unique=False)

    op.create_table('need_history',
    sa.Column('need_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=True),
    sa.Column('assignee_id', sa.String(length=64), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('need_id', 'seq')
    )
    # Replay from the start into the new tables.
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-needs'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-needs'")


def downgrade() -> None:
    op.drop_table('need_history')
    with op.batch_alter_table('need_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_need_items_pairing_id'))
        batch_op.drop_index(batch_op.f('ix_need_items_day'))
        batch_op.drop_index(batch_op.f('ix_need_items_claimer_id'))
        batch_op.drop_index(batch_op.f('ix_need_items_base_id'))

    op.drop_table('need_items')
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-needs'")
