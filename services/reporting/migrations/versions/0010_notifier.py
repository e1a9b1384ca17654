"""the notifier: notifications (its outbox) and its own state

Revision ID: 0010_notifier
Revises: 0003
The notification streams' tables: every notification raised (kept for good, so a replay sends
nothing twice) and the notifier's state, built only from the streams by its own projections
(`notifier-events`, `notifier-registry`), which start from position 0.

Create Date: 2026-11-24 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_notifier'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject_type', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_published_at'), ['published_at'], unique=False)

    op.create_table('notifier_registry',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=True),
    sa.Column('base_id', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
    sa.Column('version', sa.String(length=40), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('kind', 'id')
    )
    with op.batch_alter_table('notifier_registry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifier_registry_base_id'), ['base_id'], unique=False)

    op.create_table('notifier_activities',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=True),
    sa.Column('base_id', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('retracted', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('logged', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('due_soon_pending', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    with op.batch_alter_table('notifier_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifier_activities_due_soon_pending'), ['due_soon_pending'], unique=False)

    op.create_table('notifier_shares',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('served', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('activity_id', 'organization_id')
    )
    op.create_table('notifier_units',
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('served', sa.BigInteger(), nullable=False),
    sa.Column('reached', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id')
    )
    op.create_table('notifier_needs',
    sa.Column('need_id', sa.String(length=64), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('pairing_id', sa.String(length=64), nullable=True),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('urgency', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('announced', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('followup_due_on', sa.Date(), nullable=True),
    sa.Column('followup_pending', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('need_id')
    )
    with op.batch_alter_table('notifier_needs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifier_needs_base_id'), ['base_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifier_needs_followup_pending'), ['followup_pending'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifier_needs_pairing_id'), ['pairing_id'], unique=False)


def downgrade() -> None:
    for table in ('notifier_needs', 'notifier_units', 'notifier_shares', 'notifier_activities',
                  'notifier_registry', 'notifications'):
        op.drop_table(table)
    op.execute("DELETE FROM projection_positions "
               "WHERE name IN ('notifier-events', 'notifier-registry')")
    op.execute("DELETE FROM parked WHERE name IN ('notifier-events', 'notifier-registry')")
