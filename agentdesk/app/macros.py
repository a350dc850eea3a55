"""Macros (`[[macro]]` in the config): `agentdesk macro NAME REF…`, a key or the palette in the TUI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentdesk.app.conversations import Ref, reply_in_session, template_values, typed_ref
from agentdesk.app.desk import Desk
from agentdesk.domain import macros as macro_rules
from agentdesk.domain import queue as queue_service
from agentdesk.domain import templates
from agentdesk.errors import InvalidInput
from agentdesk.store.models import id_of, ref_of


@dataclass(frozen=True)
class Ran:
    lines: list[str]
    sent: list[Any]  # app.conversations.Sent of each templated reply


def named(desk: Desk, name: str) -> Any:
    """The macro of the config named `name` (`InvalidInput` lists the known ones)."""
    return macro_rules.find(desk.settings.macro, name)


def run(desk: Desk, name: str, refs: Sequence[Ref], *, send_template: bool = True, delay: float = 0.0) -> Ran:
    """Run the macro on each conversation in one transaction: its steps, each audited, and with
    `send_template` its template as a reply (queued, `delay` seconds of undo window). A step that
    fails anywhere (a template with values agentdesk lacks, a bad tag) changes nothing at all."""
    macro = named(desk, name)
    if not refs:
        raise InvalidInput("name at least one conversation to run the macro on")
    lines: list[str] = []
    sent: list[Any] = []
    with desk.writing, desk.write() as session:
        now = desk.now()
        queue_service.lock_in_order(session, refs)
        for ref in refs:
            conversation = queue_service.load_for_update(session, typed_ref(ref))
            changed = macro_rules.apply(
                session, macro=macro, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies
            )
            line = f"{ref_of(id_of(conversation))}: macro {macro.name}" + (f": {', '.join(changed)}" if changed else "")
            if macro.template and send_template:
                template = templates.load(desk.settings.templates_dir, macro.template)
                rendered = templates.render(template, template_values(desk, session, conversation))
                if rendered.undefined:
                    raise InvalidInput(
                        f"macro {macro.name!r}: template {template.name!r} needs values agentdesk does not have for "
                        f"{ref_of(id_of(conversation))}: {', '.join(rendered.undefined)}; nothing was changed"
                    )
                sent.append(
                    reply_in_session(desk, session, conversation, rendered.text, status=None, delay=delay, commit=False)
                )
                line += ", reply queued" if not delay else f", reply sent in {delay:g} s unless undone"
            lines.append(line)
        session.commit()
    return Ran(lines, sent)


def macros(desk: Desk) -> list[Any]:
    """The config's macros, in order."""
    return list(desk.settings.macro)
