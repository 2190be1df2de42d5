"""
The HTTP/2 client protocol against an in-memory server side (h2's own state
machine in server mode), for what a real server rarely does on demand: tiny
flow-control windows, MAX_CONCURRENT_STREAMS of 1, GOAWAY, stream resets,
oversized answers, cancellation and lost connections. The real-socket path
(TLS, ALPN, Twisted's HTTP/2 server) is covered by test_apns.py.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from hyperframe.frame import GoAwayFrame
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from heihei.outbound.h2client import (
    H2Response, H2Unavailable, NotProcessed, ResponseTooLarge, StreamReset, _H2ClientProtocol)

HEADERS = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example"), (b":path", b"/x")]


class Transport(StringTransport):
    negotiatedProtocol = b"h2"
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


class Pair:
    """Our client protocol wired to an h2 server connection through a StringTransport."""

    def __init__(self, settings: dict | None = None, alpn: bytes | None = b"h2", max_response_bytes: int = 1000):
        self.client = _H2ClientProtocol(max_response_bytes)
        self.transport = Transport()
        self.transport.negotiatedProtocol = alpn
        self.client.makeConnection(self.transport)
        self.server = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.server.initiate_connection()
        if settings:
            self.server.update_settings(settings)
        self.client.handshakeCompleted()
        self.events: list = []

    def to_server(self) -> list:
        """Deliver what the client wrote; the server's new events."""
        data = self.transport.value()
        self.transport.clear()
        events = self.server.receive_data(data) if data else []
        self.events.extend(events)
        return events

    def to_client(self) -> None:
        data = self.server.data_to_send()
        if data:
            self.client.dataReceived(data)

    def exchange(self) -> list:
        """Settle both ways until quiet."""
        events = []
        for _ in range(20):
            new = self.to_server()
            events.extend(new)
            self.to_client()
            if not new and not self.transport.value():
                break
        return events

    def answer(self, stream_id: int, status: int = 200, body: bytes = b"") -> None:
        self.server.send_headers(stream_id, [(b":status", str(status).encode())], end_stream=not body)
        if body:
            self.server.send_data(stream_id, body, end_stream=True)
        self.to_client()

    def request(self, body: bytes = b"") -> defer.Deferred:
        return self.client.request(list(HEADERS), body)

    def requests_seen(self) -> list[h2.events.RequestReceived]:
        return [e for e in self.events if isinstance(e, h2.events.RequestReceived)]

    def body_seen(self, stream_id: int) -> bytes:
        return b"".join(e.data for e in self.events
                        if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id)


def result(d: defer.Deferred):
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def test_requests_wait_for_the_servers_settings():
    pair = Pair()
    assert not pair.client.ready.called
    pair.exchange()
    assert result(pair.client.ready) is pair.client


def test_a_server_that_did_not_choose_h2_by_alpn_is_refused():
    for alpn in (None, b"http/1.1"):
        pair = Pair(alpn=alpn)
        with pytest.raises(H2Unavailable, match="did not agree to HTTP/2"):
            result(pair.client.ready)
        assert pair.transport.aborted


def test_a_request_and_its_answer():
    pair = Pair()
    pair.exchange()
    d = pair.request(b'{"x": 1}')
    pair.exchange()
    [seen] = pair.requests_seen()
    assert dict(seen.headers)[b":path"] == b"/x"
    assert pair.body_seen(seen.stream_id) == b'{"x": 1}'
    pair.answer(seen.stream_id, 200, b"ok")
    response = result(d)
    assert response == H2Response(200, response.headers, b"ok")


def test_requests_beyond_max_concurrent_streams_queue():
    pair = Pair(settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    pair.exchange()
    first, second = pair.request(b"1"), pair.request(b"2")
    pair.exchange()
    assert len(pair.requests_seen()) == 1
    pair.answer(pair.requests_seen()[0].stream_id)
    pair.exchange()
    assert len(pair.requests_seen()) == 2
    pair.answer(pair.requests_seen()[1].stream_id)
    assert result(first).status == result(second).status == 200


def test_a_body_larger_than_the_window_waits_for_window_updates():
    pair = Pair(settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16})
    pair.exchange()
    body = bytes(range(256)) * 4
    d = pair.request(body)
    pair.exchange()
    [seen] = pair.requests_seen()
    assert len(pair.body_seen(seen.stream_id)) == 16
    for _ in range(100):
        received = len(pair.body_seen(seen.stream_id))
        if received == len(body):
            break
        pair.server.increment_flow_control_window(16, stream_id=seen.stream_id)
        pair.exchange()
    assert pair.body_seen(seen.stream_id) == body
    assert any(isinstance(e, h2.events.StreamEnded) for e in pair.events)
    pair.answer(seen.stream_id)
    assert result(d).status == 200


def test_goaway_fails_streams_above_last_stream_id_as_not_processed():
    pair = Pair()
    pair.exchange()
    first, second = pair.request(b"1"), pair.request(b"2")
    pair.exchange()
    one, three = (e.stream_id for e in pair.requests_seen())
    # a GOAWAY frame by hand, as h2's server side will not send frames after it
    pair.client.dataReceived(GoAwayFrame(0, last_stream_id=one, error_code=0).serialize())
    with pytest.raises(NotProcessed, match="GOAWAY"):
        result(second)
    # h2 cannot read the answer to stream 1 after a GOAWAY (python-hyper/h2#1181): outcome unknown
    with pytest.raises(H2Unavailable, match="may have acted") as caught:
        result(first)
    assert not isinstance(caught.value, NotProcessed)
    assert not pair.client.usable
    with pytest.raises(NotProcessed):
        result(pair.request(b"late"))
    assert pair.transport.disconnecting


def test_a_refused_stream_is_not_processed_and_other_resets_are_errors():
    pair = Pair()
    pair.exchange()
    refused, reset = pair.request(), pair.request()
    pair.exchange()
    one, three = (e.stream_id for e in pair.requests_seen())
    pair.server.reset_stream(one, h2.errors.ErrorCodes.REFUSED_STREAM)
    pair.server.reset_stream(three, h2.errors.ErrorCodes.INTERNAL_ERROR)
    pair.to_client()
    with pytest.raises(NotProcessed):
        result(refused)
    with pytest.raises(StreamReset, match="INTERNAL_ERROR"):
        result(reset)


def test_an_oversized_answer_resets_the_stream():
    pair = Pair(max_response_bytes=10)
    pair.exchange()
    d = pair.request()
    pair.exchange()
    [seen] = pair.requests_seen()
    pair.server.send_headers(seen.stream_id, [(b":status", b"200")])
    pair.server.send_data(seen.stream_id, b"x" * 11)
    pair.to_client()
    with pytest.raises(ResponseTooLarge):
        result(d)
    pair.to_server()
    assert any(isinstance(e, h2.events.StreamReset) and e.stream_id == seen.stream_id for e in pair.events)


def test_cancelling_resets_the_stream_and_drops_a_silent_connection():
    pair = Pair()
    pair.exchange()
    d = pair.request(b"x")
    pair.to_server()
    d.cancel()
    with pytest.raises(defer.CancelledError):
        result(d)
    pair.to_server()
    assert any(isinstance(e, h2.events.StreamReset) and e.error_code == h2.errors.ErrorCodes.CANCEL
               for e in pair.events)
    assert pair.transport.aborted  # nothing came back at all since the request: presumed dead


def test_cancelling_keeps_a_connection_that_is_alive():
    pair = Pair()
    pair.exchange()
    d = pair.request(b"x")
    pair.to_server()
    pair.server.ping(b"12345678")
    pair.to_client()
    d.cancel()
    with pytest.raises(defer.CancelledError):
        result(d)
    assert not pair.transport.aborted


def test_a_lost_connection_sends_again_only_what_got_no_reaction_at_all():
    pair = Pair()
    pair.exchange()
    silent = pair.request(b"x")
    pair.to_server()
    pair.client.connectionLost(Failure(ConnectionError("reset")))
    with pytest.raises(NotProcessed):
        result(silent)

    pair = Pair()
    pair.exchange()
    answered_in_part = pair.request(b"x")
    pair.exchange()
    [seen] = pair.requests_seen()
    pair.server.send_headers(seen.stream_id, [(b":status", b"200")])
    pair.to_client()
    pair.client.connectionLost(Failure(ConnectionError("reset")))
    with pytest.raises(H2Unavailable) as caught:
        result(answered_in_part)
    assert not isinstance(caught.value, NotProcessed)
