"""Reply templates: Markdown files in the templates directory, rendered in a sandbox.

A template is `<templates dir>/<name>.md`, so a team can keep them in git. It may start with a
front-matter block of `key: value` lines between `---` lines (`shortcut`, `description`,
`subject`). Placeholders are Jinja2 expressions such as `{{ customer_first_name }}`; rendering
uses Jinja2's SandboxedEnvironment because template text is written by people and filled with
values that customers control. A placeholder with no value is reported, never silently blank,
so the agent can fill it before sending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from agentdesk.errors import InvalidInput, NotFound

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# The placeholders agentdesk fills, with what they mean (shown in the composer's help).
VARIABLES = {
    "customer_name": "the customer's full name",
    "customer_first_name": "the customer's first name",
    "agent_name": "your display name",
    "agent_signature": "your signature",
    "ref": "the conversation reference, e.g. AD-1042",
    "subject": "the conversation subject",
    "channel": "email, sms, chat, webform or social",
    "due": "when the next reply is due, in the customer's terms",
}


@dataclass(frozen=True)
class Template:
    name: str
    body: str
    shortcut: str = ""
    description: str = ""
    subject: str = ""
    path: Path | None = None


@dataclass(frozen=True)
class Rendered:
    text: str
    undefined: tuple[str, ...] = field(default=())


def parse_template(name: str, text: str, path: Path | None = None) -> Template:
    meta: dict[str, str] = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            for line in text[4:end].splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip()
            body = text[end + 4 :].lstrip("\n")
    return Template(
        name=name,
        body=body,
        shortcut=meta.get("shortcut", ""),
        description=meta.get("description", ""),
        subject=meta.get("subject", ""),
        path=path,
    )


def load_all(directory: Path) -> list[Template]:
    """Every template in the directory, by name; an absent directory holds none."""
    if not directory.is_dir():
        return []
    templates = []
    for path in sorted(directory.glob("*.md")):
        if NAME_PATTERN.match(path.stem):
            templates.append(parse_template(path.stem, path.read_text(encoding="utf-8", errors="replace"), path))
    return templates


def load(directory: Path, name: str) -> Template:
    for template in load_all(directory):
        if template.name == name or (template.shortcut and template.shortcut == name):
            return template
    known = ", ".join(t.name for t in load_all(directory)) or "none"
    raise NotFound(f"no template {name!r} in {directory} (templates: {known})")


def save(directory: Path, template: Template) -> Path:
    """Write a template file (used by "save as template"); refuses names that are not plain."""
    if not NAME_PATTERN.match(template.name):
        raise InvalidInput(
            f"template name {template.name!r} is not valid; use letters, digits, '.', '-' or '_' (max 64)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    meta = [f"{key}: {value}" for key, value in
            (("shortcut", template.shortcut), ("description", template.description), ("subject", template.subject))
            if value]
    text = (f"---\n{chr(10).join(meta)}\n---\n" if meta else "") + template.body
    path = directory / f"{template.name}.md"
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


def _environment():
    from jinja2 import Undefined
    from jinja2.sandbox import SandboxedEnvironment

    missing: list[str] = []

    class RecordingUndefined(Undefined):
        """Renders as a visible marker and remembers the name, so the agent sees what to fill."""

        def __str__(self) -> str:
            if self._undefined_name and self._undefined_name not in missing:
                missing.append(self._undefined_name)
            return f"[[{self._undefined_name}?]]"

    environment = SandboxedEnvironment(undefined=RecordingUndefined, autoescape=False, keep_trailing_newline=True)
    return environment, missing


def render(template: Template | str, values: dict[str, str]) -> Rendered:
    """Fill placeholders. Undefined or empty ones render as `[[name?]]` and are listed in `undefined`."""
    from jinja2 import TemplateError

    source = template.body if isinstance(template, Template) else template
    environment, missing = _environment()
    present = {key: value for key, value in values.items() if value}
    try:
        text = environment.from_string(source).render(**present)
    except TemplateError as error:
        name = template.name if isinstance(template, Template) else "template"
        raise InvalidInput(f"{name}: cannot render: {error}") from None
    return Rendered(text=text, undefined=tuple(missing))


def first_name(full_name: str) -> str:
    parts = full_name.split()
    if not parts or "@" in parts[0] or parts[0].startswith("+"):
        return ""
    return parts[0]
