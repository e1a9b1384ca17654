"""timeliness read model: each activity as a rota entry and once logged, with its report's
deadline and first report

Revision ID: 0005_timeliness
Revises: 0003
The projection replays the stream from the start to fill it (its position, if an earlier
stub of it ran, is forgotten).

Create Date: 2026-11-23 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_timeliness'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tl_activities',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), server_default='', nullable=False),
    sa.Column('planned_on', sa.Date(), nullable=True),
    sa.Column('planned_month', sa.String(length=7), nullable=True),
    sa.Column('logged', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('day', sa.Date(), nullable=True),
    sa.Column('month', sa.String(length=7), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_fixed', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retracted', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tl_activities_base_id'), ['base_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tl_activities_day'), ['day'], unique=False)
        batch_op.create_index(batch_op.f('ix_tl_activities_organization_id'),
                              ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tl_activities_planned_on'), ['planned_on'],
                              unique=False)

    # Replay from the start into the new table.
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-timeliness'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-timeliness'")


def downgrade() -> None:
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tl_activities_planned_on'))
        batch_op.drop_index(batch_op.f('ix_tl_activities_organization_id'))
        batch_op.drop_index(batch_op.f('ix_tl_activities_day'))
        batch_op.drop_index(batch_op.f('ix_tl_activities_base_id'))

    op.drop_table('tl_activities')
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-timeliness'")
