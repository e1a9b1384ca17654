"""pairings read model: activities and needs by pairing, for fulfilment

Revision ID: 0007_pairings
Revises: 0003
The projection replays the stream from the start to fill them (its position, if an earlier
stub of it ran, is forgotten).

Create Date: 2026-11-23 10:05:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_pairings'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pairing_activities',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('pairing_id', sa.String(length=64), nullable=True),
    sa.Column('project_id', sa.String(length=64), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('served', sa.BigInteger(), nullable=False),
    sa.Column('volunteer_hours', sa.Float(), nullable=False),
    sa.Column('retracted', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    with op.batch_alter_table('pairing_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pairing_activities_pairing_id'), ['pairing_id'], unique=False)

    op.create_table('pairing_needs',
    sa.Column('need_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('pairing_id', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.PrimaryKeyConstraint('need_id')
    )
    with op.batch_alter_table('pairing_needs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pairing_needs_pairing_id'), ['pairing_id'], unique=False)

    # Replay from the start into the new tables.
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-pairings'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-pairings'")


def downgrade() -> None:
    with op.batch_alter_table('pairing_needs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pairing_needs_pairing_id'))

    op.drop_table('pairing_needs')
    with op.batch_alter_table('pairing_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pairing_activities_pairing_id'))

    op.drop_table('pairing_activities')
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-pairings'")
