"""assessment: the year-end assessment's rules, every version kept

Revision ID: 0009_assessment
Revises: 0003
Rules are data, written by `POST /v1/assessment/rules`, never by replay. Version 1, the default
(the same as `assessment.DEFAULT_RULES`), is here so it exists before any POST.

Create Date: 2026-11-24 10:30:00.000000
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0009_assessment'
down_revision = '0003'
branch_labels = None
depends_on = None

# Written out, not imported: a migration keeps what it inserted, whatever the code says later.
DEFAULT_RULES = {"components": [
    {"figure": "activities", "weight": 20.0, "target": 24.0, "invert": False},
    {"figure": "served", "weight": 20.0, "target": 1000.0, "invert": False},
    {"figure": "volunteer_hours", "weight": 15.0, "target": 500.0, "invert": False},
    {"figure": "on_time_rate", "weight": 20.0, "target": 0.9, "invert": False},
    {"figure": "needs_resolved", "weight": 15.0, "target": 10.0, "invert": False},
    {"figure": "missed", "weight": 10.0, "target": 4.0, "invert": True},
]}


def upgrade() -> None:
    rules = op.create_table('assessment_rules',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('version')
    )
    op.bulk_insert(rules, [{"version": 1, "created_at": datetime.now(UTC),
                            "rules": DEFAULT_RULES, "note": "默认考核细则（第1版）"}])


def downgrade() -> None:
    op.drop_table('assessment_rules')
    op.execute("DELETE FROM projection_positions WHERE name = 'reporting-assessment'")
    op.execute("DELETE FROM parked WHERE name = 'reporting-assessment'")
