"""activity cube: shares indexed by unit, so a unit's scope reads its own shares, not all

Revision ID: 0011_cube_shares_by_unit
Revises: 0003
Create Date: 2026-11-30 20:20:00.000000
"""
from alembic import op


revision = '0011_cube_shares_by_unit'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cube_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cube_shares_organization_id'), ['organization_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cube_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cube_shares_organization_id'))
