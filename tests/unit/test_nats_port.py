"""`tongxin up` keeps its NATS server on one port across restarts (the port is kept in the data
dir), so the `TONGXIN_PUBLISHER_URL` it printed keeps working; a port taken meanwhile is
replaced, and said so."""

from __future__ import annotations

import socket

from tongxin.natsserver import port_free, remembered_port


def test_the_port_is_kept_and_reused_while_free(tmp_path):
    path = tmp_path / "var" / "nats-port"
    port, taken = remembered_port(path)
    assert taken is None and path.read_text().strip() == str(port)
    assert port_free(port)
    assert remembered_port(path) == (port, None)
    assert remembered_port(path) == (port, None)


def test_a_taken_port_is_replaced_and_the_new_one_kept(tmp_path):
    path = tmp_path / "nats-port"
    with socket.socket() as holder:  # something else listens on the remembered port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        path.write_text(f"{busy}\n")
        assert not port_free(busy)
        port, taken = remembered_port(path)
        assert (taken, port != busy) == (busy, True)
    assert path.read_text().strip() == str(port)
    assert remembered_port(path) == (port, None)


def test_a_file_that_says_no_port_is_replaced(tmp_path):
    path = tmp_path / "nats-port"
    path.write_text("not a port\n")
    port, taken = remembered_port(path)
    assert taken is None and remembered_port(path) == (port, None)
