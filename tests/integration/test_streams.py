"""Streams as `ensure_streams` declares them, on a real NATS server: one made earlier with a
day's duplicate window (as every stream was) is brought to the declared window at start."""

from __future__ import annotations

import pytest

from shared.streams import DUPLICATE_WINDOW, ensure_streams, stream_configs
from shared.subjects import Names
from tests.integration.conftest import delete_streams, new_tag

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAY = 24 * 3600.0


async def test_a_stream_made_with_a_days_window_is_given_the_declared_one(nc):
    js = nc.jetstream()
    names = Names(new_tag())
    try:
        for config in stream_configs(names, duplicate_window=DAY):
            await js.add_stream(config)
        assert {(await js.stream_info(c.name or "")).config.duplicate_window
                for c in stream_configs(names)} == {DAY}
        await ensure_streams(js, names)
        for config in stream_configs(names):
            info = await js.stream_info(config.name or "")
            assert info.config.duplicate_window == DUPLICATE_WINDOW, config.name
            assert info.config.max_age == config.max_age  # the rest as declared
        await ensure_streams(js, names, duplicate_window=30)  # TONGXIN_DUPLICATE_WINDOW
        assert (await js.stream_info(names.events_stream)).config.duplicate_window == 30
    finally:
        await delete_streams(js, names)
