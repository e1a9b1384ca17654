"""activity cube: rollups the summary reads (per unit or programme × month × dimension × key,
with who attended as a set of volunteer numbers), and attendance indexed by volunteer

Revision ID: 0013_activity_rollups
Revises: 0012_activity_titles
The activities projection replays the stream from the start to fill them (its rows and
position are forgotten; the other read models keep theirs).

Create Date: 2026-12-07 16:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_activity_rollups'
down_revision = '0012_activity_titles'
branch_labels = None
depends_on = None

CUBE = ('cube_activities', 'cube_shares', 'cube_share_types', 'cube_outputs', 'cube_attendance')


def _keys() -> list[sa.Column]:
    return [sa.Column('node', sa.String(length=64), nullable=False),
            sa.Column('month', sa.String(length=7), nullable=False),
            sa.Column('dimension', sa.String(length=16), nullable=False),
            sa.Column('key', sa.String(length=64), nullable=False)]


def upgrade() -> None:
    op.create_table('cube_rollup', *_keys(),
    sa.Column('activities', sa.BigInteger(), nullable=False),
    sa.Column('served', sa.BigInteger(), nullable=False),
    sa.Column('volunteers', sa.BigInteger(), nullable=False),
    sa.Column('hours_milli', sa.BigInteger(), nullable=False),
    sa.Column('trainees', sa.BigInteger(), nullable=False),
    sa.Column('donation_fen', sa.BigInteger(), nullable=False),
    sa.Column('people', sa.LargeBinary(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('node', 'month', 'dimension', 'key')
    )
    op.create_table('cube_rollup_outputs', *_keys(),
    sa.Column('indicator', sa.String(length=40), nullable=False),
    sa.Column('quantity_milli', sa.BigInteger(), nullable=False),
    sa.Column('activities', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('node', 'month', 'dimension', 'key', 'indicator')
    )
    op.create_table('cube_volunteer_numbers',
    sa.Column('volunteer_id', sa.String(length=64), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('volunteer_id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('cube_attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cube_attendance_volunteer_id'), ['volunteer_id'],
                              unique=False)
    # Replay the activities projection from the start into the cube and its rollups.
    for table in CUBE:
        op.execute(f"DELETE FROM {table}")
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-activities'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-activities'")


def downgrade() -> None:
    with op.batch_alter_table('cube_attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cube_attendance_volunteer_id'))
    op.drop_table('cube_volunteer_numbers')
    op.drop_table('cube_rollup_outputs')
    op.drop_table('cube_rollup')
