from services.registry.store import metadata
from shared.migrations_env import run

run(metadata)
