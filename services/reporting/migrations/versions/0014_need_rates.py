"""needs read model: the 12345 rates (response, resolution, satisfaction), the month of
submission, the possible-duplicate flag and links

Revision ID: 0014_need_rates
Revises: 0006_needs
The needs are replayed from the start (their tables emptied, the position forgotten), so every
need gets its month, its first settling, its latest answer and its flag.

Create Date: 2026-12-07 19:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0014_need_rates'
down_revision = '0006_needs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('need_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('month', sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('satisfaction', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('respondent', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('answered_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('reopened_unsatisfied', sa.Integer(),
                                      server_default='0', nullable=False))
        batch_op.add_column(sa.Column('duplicate_of', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('linked_to', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_need_items_month'), ['month'], unique=False)
    with op.batch_alter_table('need_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('satisfaction', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('original_id', sa.String(length=64), nullable=True))
    _replay()


def downgrade() -> None:
    with op.batch_alter_table('need_history', schema=None) as batch_op:
        batch_op.drop_column('original_id')
        batch_op.drop_column('satisfaction')
    with op.batch_alter_table('need_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_need_items_month'))
        for column in ('linked_to', 'duplicate_of', 'reopened_unsatisfied', 'answered_at',
                       'respondent', 'satisfaction', 'settled_at', 'month'):
            batch_op.drop_column(column)
    _replay()


def _replay() -> None:
    op.execute("DELETE FROM need_history")
    op.execute("DELETE FROM need_items")
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-needs'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-needs'")
