"""coverage: idle bases and campaign household coverage

Revision ID: 0008_coverage
Revises: 0003
Each activity's base and local day, campaign visits, and each visit's distinct household keys.
A new projection (`reporting-coverage`) with no position yet: it replays from the start.

Create Date: 2026-11-24 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_coverage'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coverage_activities',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('retracted', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    op.create_table('coverage_visits',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('unkeyed', sa.Integer(), nullable=False),
    sa.Column('volunteers', sa.Integer(), nullable=False),
    sa.Column('problems_found', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('coverage_visits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coverage_visits_campaign_id'), ['campaign_id'],
                              unique=False)

    op.create_table('coverage_household_keys',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('household_key', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'household_key')
    )
    with op.batch_alter_table('coverage_household_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coverage_household_keys_campaign_id'),
                              ['campaign_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('coverage_household_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coverage_household_keys_campaign_id'))
    op.drop_table('coverage_household_keys')
    with op.batch_alter_table('coverage_visits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coverage_visits_campaign_id'))
    op.drop_table('coverage_visits')
    op.drop_table('coverage_activities')
    # The projection's position and parked messages go with its tables.
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-coverage'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-coverage'")
