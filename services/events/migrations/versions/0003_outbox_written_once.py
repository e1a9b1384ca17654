"""outbox written once: a watermark and the published runs' sequences beside the rows

The relay no longer updates each row it publishes (`published_at`, `seq`): `outbox_watermarks`
holds the highest id published, `outbox_seqs` the sequences each run of rows took. Rows
published before keep their sequence (a run of one each).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OUTBOX = 'accepted_events'


def upgrade() -> None:
    op.create_table('outbox_watermarks',
    sa.Column('outbox', sa.String(length=100), nullable=False),
    sa.Column('published_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('outbox')
    )
    op.create_table('outbox_seqs',
    sa.Column('outbox', sa.String(length=100), nullable=False),
    sa.Column('first_id', sa.BigInteger(), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('outbox', 'first_id', 'last_id')
    )
    op.execute(f"INSERT INTO outbox_seqs (outbox, first_id, last_id, first_seq) "
               f"SELECT '{OUTBOX}', id, id, seq FROM {OUTBOX} WHERE seq IS NOT NULL")
    # Published in id order: everything before the first row not published is.
    op.execute(f"INSERT INTO outbox_watermarks (outbox, published_id) SELECT '{OUTBOX}', "
               f"COALESCE((SELECT MIN(id) - 1 FROM {OUTBOX} WHERE published_at IS NULL), "
               f"(SELECT MAX(id) FROM {OUTBOX}), 0)")
    with op.batch_alter_table(OUTBOX, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(f'ix_{OUTBOX}_published_at'))
        batch_op.drop_column('published_at')
        batch_op.drop_column('seq')


def downgrade() -> None:
    with op.batch_alter_table(OUTBOX, schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('published_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f(f'ix_{OUTBOX}_published_at'),
                              ['published_at'], unique=False)
    op.execute(f"UPDATE {OUTBOX} SET published_at = created_at WHERE id <= COALESCE(("
               f"SELECT published_id FROM outbox_watermarks WHERE outbox = '{OUTBOX}'), 0)")
    op.execute(f"UPDATE {OUTBOX} SET seq = (SELECT s.first_seq + (SELECT COUNT(*) FROM "
               f"{OUTBOX} b WHERE b.id >= s.first_id AND b.id < {OUTBOX}.id) FROM outbox_seqs s "
               f"WHERE s.outbox = '{OUTBOX}' AND {OUTBOX}.id BETWEEN s.first_id AND s.last_id "
               f"LIMIT 1)")
    op.drop_table('outbox_seqs')
    op.drop_table('outbox_watermarks')
