"""The receiver's request head parser (request_head): what a sender's head means, and which heads
are refused before anything is read from the body."""

from __future__ import annotations

import pytest

from agentdesk.channels.webhook import request_head
from agentdesk.channels.webhook.request_head import HeadError


def fields(*lines: str) -> request_head.Headers:
    return request_head.parse_fields([*lines, "", ""])


def test_a_post_head_is_read_as_the_standard_library_read_it():
    head = (
        b"POST /hooks/chat HTTP/1.1\r\nHost: 127.0.0.1:8025\r\ncontent-length: 12 \r\n"
        b"Content-Type:application/json\r\nX-Agentdesk-Signature: sha256=ab\r\n\r\n"
    )
    requestline, rest = request_head.split_head(head)
    line = request_head.parse_request_line(requestline)
    headers = request_head.parse_fields(rest)
    assert (line.command, line.path, line.version, line.keep_alive) == ("POST", "/hooks/chat", "HTTP/1.1", True)
    assert headers.get("Content-Length") == "12"  # any case; surrounding spaces trimmed
    assert headers.get("content-type") == "application/json"
    assert "X-AGENTDESK-SIGNATURE" in headers and "Transfer-Encoding" not in headers
    assert headers.get("Expect") is None and headers.get("Expect", "") == ""


def test_repeated_fields_keep_every_value_in_order_and_get_returns_the_first():
    headers = fields("Content-Length: 5", "X-Other: a", "Content-Length: 7")
    assert headers.get_all("content-length") == ["5", "7"]
    assert headers.get("Content-Length") == "5"
    assert headers.get_all("Transfer-Encoding") is None


def test_bare_line_feeds_end_lines_and_the_blank_line_ends_the_fields():
    requestline, rest = request_head.split_head(b"GET /healthz HTTP/1.0\nHost: x\n\nX-Body-Not-A-Field: 1\n")
    assert request_head.parse_request_line(requestline).keep_alive is False  # HTTP/1.0
    headers = request_head.parse_fields(rest)
    assert headers.get("Host") == "x" and "X-Body-Not-A-Field" not in headers


def test_an_obsolete_folded_line_continues_the_value_before_it():
    headers = fields("X-Long: first part", " \tsecond part", "Host: h")
    assert headers.get("X-Long") == "first part second part" and headers.get("Host") == "h"


@pytest.mark.parametrize(
    "line",
    [
        "Content-Length : 5",  # whitespace between name and colon: a proxy may read it otherwise
        "No colon here",
        ": no name",
        "Bad\x01Name: x",
        "Spaced Name: x",
    ],
)
def test_a_malformed_field_line_is_400_not_the_silent_start_of_a_body(line):
    with pytest.raises(HeadError) as refused:
        fields("Host: h", line, "X-Agentdesk-Signature: sha256=00")
    assert refused.value.status == 400


def test_a_folded_line_before_any_field_is_400():
    with pytest.raises(HeadError) as refused:
        fields(" folded", "Host: h")
    assert refused.value.status == 400


def test_more_than_a_hundred_field_lines_is_431():
    fields(*(f"X-Filler-{i}: v" for i in range(request_head.MAX_FIELDS)))
    with pytest.raises(HeadError) as refused:
        fields(*(f"X-Filler-{i}: v" for i in range(request_head.MAX_FIELDS + 1)))
    assert refused.value.status == 431


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("POST /hooks/chat HTTP/2.0", 505),
        ("POST /hooks/chat HTTP/1", 400),
        ("POST /hooks/chat HTTP/1.x", 400),
        ("POST /hooks/chat HTTP/1.\u00b2", 400),  # a digit to isdigit(), not to int()
        ("POST /hooks/chat FTP/1.1", 400),
        ("POST /a b HTTP/1.1", 400),
        ("POST /hooks/chat", 400),  # two words: HTTP/0.9, which has GET only
        ("POST", 400),
    ],
)
def test_a_bad_request_line_is_refused_with_its_status(line, status):
    with pytest.raises(HeadError) as refused:
        request_head.parse_request_line(line)
    assert refused.value.status == status


def test_an_http_0_9_get_and_a_doubled_slash_are_read_as_the_standard_library_reads_them():
    line = request_head.parse_request_line("GET //healthz")
    assert (line.command, line.path, line.version, line.keep_alive) == ("GET", "/healthz", "HTTP/0.9", False)
