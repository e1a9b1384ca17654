"""timeliness: rollups the report and the assessment read (per unit × month × base × report or
rota), and the activities' deadlines indexed (what "now" still decides is read from them)

Revision ID: 0016_timeliness_rollups
Revises: 0013_report_photos
The timeliness projection replays the stream from the start to fill them (its rows and
position are forgotten; the other read models keep theirs).

Create Date: 2026-12-07 23:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0016_timeliness_rollups'
down_revision = '0013_report_photos'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tl_rollup',
    sa.Column('organization_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('dimension', sa.String(length=8), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.Column('on_time', sa.BigInteger(), nullable=False),
    sa.Column('late', sa.BigInteger(), nullable=False),
    sa.Column('open', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('organization_id', 'month', 'dimension', 'key', 'kind')
    )
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tl_activities_due_at'), ['due_at'], unique=False)
    # Replay the timeliness projection from the start into its rows and rollups.
    op.execute("DELETE FROM tl_activities")
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-timeliness'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-timeliness'")


def downgrade() -> None:
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tl_activities_due_at'))
    op.drop_table('tl_rollup')
