"""The rules of what leaves the desk: addresses checked per channel, typed lists split, file
names made safe, the size limit refused before anything is stored."""

from __future__ import annotations

import pytest

from agentdesk.domain import outbound
from agentdesk.domain.outbound import OutgoingFile, Recipients
from agentdesk.errors import InvalidInput


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("Bo@Example.COM", "bo@example.com"),
        ("Bo Berg <bo@example.com>", "bo@example.com"),
        ("  greta@velo.example ", "greta@velo.example"),
        ("root@localhost", "root@localhost"),
    ],
)
def test_email_addresses_are_normalised(typed, address):
    assert outbound.email_address(typed) == address


@pytest.mark.parametrize(
    "typed",
    [
        "not an address",
        "a@",
        "@b.example",
        "a@b@c.example",
        "a b@c.example",
        "<>",
        "a@b.example\r\nBcc: evil@x.example",
        "",
    ],
)
def test_bad_email_addresses_are_refused_with_the_text(typed):
    with pytest.raises(InvalidInput, match="is not an email address"):
        outbound.email_address(typed)


def test_split_keeps_display_names_and_takes_any_separator():
    assert outbound.split("Bo Berg <bo@x.example>, ann@x.example; c@x.example d@x.example") == (
        "Bo Berg <bo@x.example>",
        "ann@x.example",
        "c@x.example",
        "d@x.example",
    )
    assert outbound.split("") == ()


def test_checked_dedupes_across_to_cc_bcc_and_refuses_cc_off_email():
    checked = outbound.checked(
        "email", Recipients(to=("A@x.example",), cc=("a@x.example", "b@x.example"), bcc=("b@x.example", "c@x.example"))
    )
    assert checked == Recipients(("a@x.example",), ("b@x.example",), ("c@x.example",))
    with pytest.raises(InvalidInput, match="no recipient"):
        outbound.checked("email", Recipients(cc=("b@x.example",)))
    with pytest.raises(InvalidInput, match="Cc and Bcc are for email"):
        outbound.checked("sms", Recipients(to=("+442079460958",), cc=("b@x.example",)))
    assert outbound.checked("sms", Recipients(to=("+44 20 7946 0958",))).to == ("+442079460958",)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("invoice\x1b[31m.pdf", "invoice.pdf"),
        ("\u202egnp.exe", "gnp.exe"),
        (".hidden", "hidden"),
        ("", "attachment"),
    ],
)
def test_file_names_are_one_safe_component(name, safe):
    assert OutgoingFile(name=name, data=b"x").name == safe


def test_content_type_is_guessed_and_the_size_limit_names_the_largest():
    assert OutgoingFile(name="photo.jpg", data=b"x").content_type == "image/jpeg"
    files = [OutgoingFile(name="a.bin", data=b"x" * 600), OutgoingFile(name="b.bin", data=b"x" * 500)]
    outbound.check_size(files, limit=1100, where="email via support")
    with pytest.raises(InvalidInput, match=r"1\.1 kB, over the 1\.0 kB email via support accepts \(largest: a\.bin"):
        outbound.check_size(files, limit=1000, where="email via support")


def test_a_pipe_or_device_is_refused_as_an_attachment_before_it_is_read(tmp_path):
    import os

    from agentdesk.app.outbound import read_files

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # reading it would block until a writer came: the refusal must come first
    for given in (pipe, "/dev/zero"):
        with pytest.raises(InvalidInput, match="not a regular file"):
            read_files([given])
    (tmp_path / "a.txt").write_bytes(b"hello")
    (found,) = read_files([tmp_path / "a.txt"])
    assert found.name == "a.txt" and found.data == b"hello"


def test_a_file_bigger_than_any_channel_accepts_is_refused_before_it_is_read(tmp_path, config_file):
    from agentdesk import config
    from agentdesk.app.desk import Desk
    from agentdesk.app.outbound import largest_accepted, read_files

    desk = Desk(config.load(config_file))
    limit = largest_accepted(desk)
    assert limit == 25 * 1000 * 1000  # no mailbox or spool sets more than email's default
    huge = tmp_path / "disk-image.iso"
    with huge.open("wb") as out:
        out.truncate(8 * 1000**3)  # sparse: reading it would take 8 GB of memory
    with pytest.raises(InvalidInput, match=r"disk-image.iso: 8000000000 bytes, more than any channel here accepts"):
        read_files([huge], limit=limit)
    (tmp_path / "fits.bin").write_bytes(b"x" * limit)
    (found,) = read_files([tmp_path / "fits.bin"], limit=limit)
    assert len(found.data) == limit
