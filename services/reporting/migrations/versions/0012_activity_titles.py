"""activity cube: each activity's title, for the dashboard's list of a base's activities

Revision ID: 0012_activity_titles
Revises: 0011_cube_shares_by_unit
Activities logged before it show an empty title until `tongxin reporting rebuild` replays them.

Create Date: 2026-12-02 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_activity_titles'
down_revision = '0011_cube_shares_by_unit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cube_activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title', sa.String(length=200), server_default='',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('cube_activities', schema=None) as batch_op:
        batch_op.drop_column('title')
