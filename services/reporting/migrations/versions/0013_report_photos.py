"""timeliness: each activity's photo (the first its reports cite), for the report document

Revision ID: 0013_report_photos
Revises: 0005_timeliness
Reports submitted before it show no photo until `tongxin reporting rebuild` replays them.

Create Date: 2026-12-07 16:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_report_photos'
down_revision = '0005_timeliness'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tl_activities', schema=None) as batch_op:
        batch_op.drop_column('photo')
