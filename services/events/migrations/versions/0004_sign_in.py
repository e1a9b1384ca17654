"""sign-in hours: a sign-in's times on attendance, and the organisers' sign-in pages

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 19:10:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_in_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('signed_out_at', sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_table('sign_in_pages',
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('activity_id', sa.String(length=36), nullable=False),
    sa.Column('opened_by', sa.String(length=100), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code'),
    sa.UniqueConstraint('activity_id')
    )


def downgrade() -> None:
    op.drop_table('sign_in_pages')
    with op.batch_alter_table('attendance', schema=None) as batch_op:
        batch_op.drop_column('signed_out_at')
        batch_op.drop_column('signed_in_at')
