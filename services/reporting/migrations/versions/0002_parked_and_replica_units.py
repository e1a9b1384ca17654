"""parked messages, replica units

Messages a projection could not apply (`parked`); the registry replica gains each record's
`organization_id` and `base_id`, indexed. The replica is emptied and its position reset, so it is
rebuilt by replaying `TONGXIN_REGISTRY` with the new columns filled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:12:40.318604
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('parked',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('event_type', sa.String(length=100), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'seq')
    )
    with op.batch_alter_table('registry_entities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('organization_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('base_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_registry_entities_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_registry_entities_base_id'), ['base_id'], unique=False)

    # Rebuilt from the stream, so existing records get the new columns too.
    op.execute("DELETE FROM registry_entities")
    op.execute("UPDATE projection_positions SET position = 0 WHERE name = 'reporting-registry'")


def downgrade() -> None:
    with op.batch_alter_table('registry_entities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_entities_base_id'))
        batch_op.drop_index(batch_op.f('ix_registry_entities_organization_id'))
        batch_op.drop_column('base_id')
        batch_op.drop_column('organization_id')

    op.drop_table('parked')
