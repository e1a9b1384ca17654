"""service certificates (issued, kept) and volunteers' memberships by day (moves between units)

Revision ID: 0015_certificates
Revises: 0004_volunteers
The memberships model is new: it replays the registry stream from the start on its own.

Create Date: 2026-12-07 20:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_certificates'
down_revision = '0004_volunteers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'volunteer_versions',
        sa.Column('volunteer_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('organization_id', sa.String(length=64), nullable=True),
        sa.Column('since', sa.Date(), nullable=True),
        sa.Column('changed_on', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('volunteer_id', 'seq'),
    )
    op.create_table(
        'volunteer_memberships',
        sa.Column('volunteer_id', sa.String(length=64), nullable=False),
        sa.Column('valid_from', sa.Date(), nullable=False),
        sa.Column('organization_id', sa.String(length=64), nullable=True),
        sa.Column('valid_to', sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint('volunteer_id', 'valid_from'),
    )
    with op.batch_alter_table('volunteer_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_volunteer_memberships_valid_to'), ['valid_to'],
                              unique=False)
    op.create_table(
        'certificates',
        sa.Column('code', sa.String(length=24), nullable=False),
        sa.Column('volunteer_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('organization_id', sa.String(length=64), nullable=True),
        sa.Column('organization_name', sa.String(length=200), server_default='',
                  nullable=False),
        sa.Column('date_from', sa.Date(), nullable=True),
        sa.Column('date_to', sa.Date(), nullable=True),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('issued_by', sa.String(length=80), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('code'),
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_volunteer_id'), ['volunteer_id'],
                              unique=False)
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-memberships'")


def downgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificates_volunteer_id'))
    op.drop_table('certificates')
    with op.batch_alter_table('volunteer_memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_volunteer_memberships_valid_to'))
    op.drop_table('volunteer_memberships')
    op.drop_table('volunteer_versions')
