from services.events.store import metadata
from shared.migrations_env import run

run(metadata)
