"""volunteers read model: its own activities (unit, base, local day, retracted) and each
volunteer's hours per activity

Revision ID: 0004_volunteers
Revises: 0003
The projection replays the stream from the start to fill them (its position, if an earlier
stub of it ran, is forgotten).

Create Date: 2026-11-23 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_volunteers'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vol_activities',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('base_id', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('retracted', sa.Boolean(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('activity_id')
    )
    with op.batch_alter_table('vol_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vol_activities_base_id'), ['base_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vol_activities_day'), ['day'], unique=False)

    op.create_table('vol_attendance',
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('volunteer_id', sa.String(length=64), nullable=False),
    sa.Column('hours', sa.Float(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('activity_id', 'volunteer_id')
    )
    with op.batch_alter_table('vol_attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vol_attendance_volunteer_id'), ['volunteer_id'],
                              unique=False)

    # Replay from the start into the new tables.
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-volunteers'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-volunteers'")


def downgrade() -> None:
    with op.batch_alter_table('vol_attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vol_attendance_volunteer_id'))

    op.drop_table('vol_attendance')
    with op.batch_alter_table('vol_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vol_activities_day'))
        batch_op.drop_index(batch_op.f('ix_vol_activities_base_id'))

    op.drop_table('vol_activities')
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-volunteers'")
