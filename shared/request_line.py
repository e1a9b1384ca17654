"""The HTTP/1.1 protocol the services run under uvicorn: uvicorn's own (h11), made to take a
request line with raw UTF-8 in it, as curl and many scripts send it
(`GET /v1/organizations?q=刘春`). h11 allows only ASCII there, so uvicorn answered a bare
`400 Invalid HTTP request received.` in plain text; here the bytes beyond ASCII are
percent-encoded before h11 reads the line, exactly as a careful client would have sent them,
so the request works. A request that is still malformed is answered in the one error shape
(`{"errors": [{"field": "request", "message"}]}`), not in plain text."""

from __future__ import annotations

import json
import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_BEYOND_ASCII = re.compile(rb"[\x80-\xff]")


def percent_encoded(line: bytes) -> bytes:
    """Every byte beyond ASCII as %XX (the UTF-8 of 刘 is %E5%88%98)."""
    return _BEYOND_ASCII.sub(lambda m: b"%%%02X" % m.group()[0], line)


class Utf8RequestLine(H11Protocol):
    def data_received(self, data: bytes) -> None:
        # While the request line is still being received (a new request, h11 holding no
        # complete line yet), encode what of it is in `data`: up to its first newline.
        if self.conn.their_state is h11.IDLE and b"\n" not in self.conn.trailing_data[0]:
            end = data.find(b"\n")
            end = len(data) if end < 0 else end
            data = percent_encoded(data[:end]) + data[end:]
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"errors": [{"field": "request", "message": (
            "not a valid HTTP/1.1 request (its request line or headers could not be read)")}]}
        ).encode()
        for event in (h11.Response(status_code=400, reason=b"Bad Request", headers=[
                          (b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()
