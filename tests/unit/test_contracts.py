"""Names, errors, Chinese search keys, the replica's treatment of personal data."""

from __future__ import annotations

from shared.chinese import search_key
from shared.errors import dotted
from shared.replica import replica_row
from shared.streams import DUPLICATE_WINDOW, stream_configs
from shared.subjects import Names


def test_contract_names_without_namespace():
    n = Names()
    assert n.ingest("activity.logged") == "tongxin.ingest.activity.logged"
    assert n.events() == "tongxin.events.>"
    assert n.registry("base", "updated") == "tongxin.registry.base.updated"
    assert n.dlq("activity.logged") == "tongxin.dlq.activity.logged"
    assert n.notify("org-1", "report_overdue") == "tongxin.notify.org-1.report_overdue"
    assert [n.ingest_stream, n.events_stream, n.registry_stream, n.dlq_stream,
            n.notify_stream] == ["TONGXIN_INGEST", "TONGXIN_EVENTS", "TONGXIN_REGISTRY",
                                 "TONGXIN_DLQ", "TONGXIN_NOTIFY"]
    assert n.type_from_subject("tongxin.ingest.activity.logged", "ingest") == "activity.logged"


def test_a_namespace_keeps_test_runs_apart():
    n = Names("t1")
    assert n.ingest("activity.logged") == "t1.tongxin.ingest.activity.logged"
    assert n.events_stream == "T1_TONGXIN_EVENTS"
    assert n.type_from_subject("t1.tongxin.ingest.activity.logged", "ingest") == "activity.logged"
    assert n.type_from_subject("tongxin.ingest.activity.logged", "ingest") == ""


def test_every_stream_is_declared_with_explicit_limits():
    for config in stream_configs(Names()):
        # A publisher's retries dedupe; not a day of ids in the server's memory (event_id
        # dedupe beyond the window is the database's).
        assert config.duplicate_window == DUPLICATE_WINDOW <= 600
        assert stream_configs(Names(), duplicate_window=30)[0].duplicate_window == 30
        assert config.retention.value == "limits"  # history is kept for replay
        assert config.max_age is not None and config.storage.value == "file"


def test_error_locations_read_like_paths():
    assert dotted(("donations", 0, "quantity"), "data") == "data.donations[0].quantity"
    assert dotted(()) == "body"


def test_simplified_and_traditional_chinese_fold_together():
    assert search_key("濟南市歷下區") == search_key("济南市历下区")
    assert search_key("ＡＢＣ") == "abc"


def test_the_replica_never_keeps_personal_data():
    row = replica_row("volunteer", "registered", {"id": "v1", "name": "王律师",
                                                  "phone": "13800001234",
                                                  "id_number": "370302199001011234"})
    assert "phone" not in row["record"] and "id_number" not in row["record"]
    assert replica_row("organization", "deactivated", {"id": "o1", "name": "x"})["active"] is False
