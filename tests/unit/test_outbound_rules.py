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
    with pytest.raises(InvalidInput, match=r"disk-image.iso is 8000000000 bytes, more than any channel here accepts"):
        read_files([huge], limit=limit)
    (tmp_path / "fits.bin").write_bytes(b"x" * limit)
    (found,) = read_files([tmp_path / "fits.bin"], limit=limit)
    assert len(found.data) == limit


def _message(direction: str, *, kind: str = "message", sender: str = "", recipients: str = "", author: str = ""):
    from datetime import datetime, timezone

    from agentdesk.store.models import Message

    return Message(
        conversation_id=1,
        direction=direction,
        kind=kind,
        sender_address=sender,
        recipients=recipients,
        author=author,
        source="support",
        body_text=f"{direction} {kind} {sender or recipients}",
        at=datetime(2026, 12, 1, tzinfo=timezone.utc),
    )


def test_a_forward_carries_the_exchange_with_the_customer_only():
    customer = _message("inbound", sender="ines@brouwer.example", recipients="support@desk.example")
    ours = _message("outbound", recipients="ines@brouwer.example", author="Dana")
    earlier_forward = _message("outbound", kind="forward", recipients="brakes@supplier.example audit@desk.example")
    supplier_answer = _message("inbound", sender="brakes@supplier.example", recipients="support@desk.example")
    to_supplier = _message("outbound", recipients="brakes@supplier.example")
    note = _message("note", author="Dana")
    receipt = _message("outbound", kind="receipt", recipients="ines@brouwer.example")
    customer_again = _message("inbound", sender="Ines@Brouwer.example")
    thread = [customer, receipt, ours, earlier_forward, supplier_answer, to_supplier, note, customer_again]
    chosen = outbound.forwardable(thread, customer_addresses=["ines@brouwer.example"])
    assert chosen == [customer, ours, customer_again]


def test_a_customer_cced_on_a_forward_stays_in_the_next_one():
    customer = _message("inbound", sender="ines@brouwer.example")
    earlier_forward = _message("outbound", kind="forward", recipients="brakes@supplier.example ines@brouwer.example")
    customer_again = _message("inbound", sender="ines@brouwer.example")
    chosen = outbound.forwardable(
        [customer, earlier_forward, customer_again], customer_addresses=["ines@brouwer.example"]
    )
    assert chosen == [customer, customer_again]


def test_files_go_once_by_name_and_content():
    from agentdesk.store.models import Attachment

    quote = [Attachment(id=i, message_id=i, filename="quote.pdf", storage_key="a" * 64) for i in (1, 2, 3)]
    photo = Attachment(id=4, message_id=4, filename="photo.jpg", storage_key="b" * 64)
    withheld = [Attachment(id=i, message_id=i, filename="big.bin", storage_key="", state="withheld") for i in (5, 6)]
    # The same bytes under another name are another file to whoever reads the forward.
    blank = Attachment(id=7, message_id=7, filename="blank-form.pdf", storage_key="a" * 64)
    assert [f.id for f in outbound.unique_files([*quote, photo, *withheld, blank])] == [1, 4, 5, 6, 7]


def test_our_messages_are_forwarded_from_the_agent_at_the_mailbox_address():
    customer = _message("inbound", sender="ines@brouwer.example", author="Ines Brouwer")
    # Demo data keeps the customer's address beside an agent's message; a reply sent now keeps none.
    ours_old = _message("outbound", sender="ines@brouwer.example", author="You (root)")
    ours_new = _message("outbound", author="You (root)")
    text = outbound.forward_text(
        "", [customer, ours_old, ours_new], when=str, our_address=lambda message: "support@desk.example"
    )
    froms = [line for line in text.splitlines() if line.startswith("From: ")]
    assert froms == [
        "From: Ines Brouwer <ines@brouwer.example>",
        "From: You (root) <support@desk.example>",
        "From: You (root) <support@desk.example>",
    ]


def test_file_errors_name_the_path_not_a_flag(tmp_path):
    """The same words serve the CLI's --attach and the composer's ctrl+o."""
    from agentdesk.app.outbound import read_files

    with pytest.raises(InvalidInput) as refused:
        read_files([tmp_path])
    assert str(refused.value) == f"{tmp_path} is a directory; attach files one by one"
    with pytest.raises(InvalidInput) as refused:
        read_files([tmp_path / "gone.pdf"])
    assert str(refused.value).startswith(f"cannot read {tmp_path / 'gone.pdf'}: ") and "--" not in str(refused.value)
