"""Reply templates: Markdown files in the templates directory, rendered in a sandbox.

A template is `<templates dir>/<name>.md`, so a team can keep them in git. It may start with a
front-matter block of `key: value` lines between `---` lines (`shortcut`, `description`,
`subject`). Placeholders are Jinja2 expressions such as `{{ customer_first_name }}`; rendering
uses Jinja2's sandbox, bounded in time and memory (`rendering`), because template text is written
by people and filled with values that customers control, and it runs inside the TUI and ingest. A
placeholder with no value is reported, never silently blank, so the agent can fill it before
sending; a template that cannot be rendered raises `TemplateFailed`, one line naming the template
and the line.
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


class TemplateFailed(InvalidInput):
    """A template cannot be rendered: its name, the line where known, and what is wrong."""

    def __init__(self, name: str, line: int | None, problem: str) -> None:
        self.template_name = name
        self.line = line
        self.problem = problem
        where = f"template {name!r}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {problem}")


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


def front_matter(text: str) -> tuple[dict[str, str], str]:
    """The `key: value` lines between a leading `---` line and the next (keys lower-cased), and
    the text after them; no block: nothing, and the whole text. Templates and knowledge-base
    articles share this format."""
    meta: dict[str, str] = {}
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            for line in text[4:end].splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    meta[key.strip().lower()] = value.strip()
            return meta, text[end + 4 :].lstrip("-").lstrip("\n")
    return meta, text


def parse_template(name: str, text: str, path: Path | None = None) -> Template:
    meta, body = front_matter(text)
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
    meta = [
        f"{key}: {value}"
        for key, value in (
            ("shortcut", template.shortcut),
            ("description", template.description),
            ("subject", template.subject),
        )
        if value
    ]
    text = (f"---\n{chr(10).join(meta)}\n---\n" if meta else "") + template.body
    path = directory / f"{template.name}.md"
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


def _undefined_type(missing: list[str]):
    from jinja2 import Undefined
    from jinja2.exceptions import SecurityError

    class RecordingUndefined(Undefined):
        """Renders as a visible marker and remembers the name, so the agent sees what to fill."""

        def __str__(self) -> str:
            if self._undefined_exception is SecurityError:
                self._fail_with_undefined_error()  # an unsafe attribute is an error, not a blank
            if self._undefined_name and self._undefined_name not in missing:
                missing.append(self._undefined_name)
            return f"[[{self._undefined_name}?]]"

    return RecordingUndefined


def render(template: Template | str, values: dict[str, str], *, optional: frozenset[str] = frozenset()) -> Rendered:
    """Fill placeholders. Undefined or empty ones render as `[[name?]]` and are listed in `undefined`,
    but for the `optional` ones, which may be empty (the receipt's `articles` when none match).

    Rendering is bounded in time and memory (see `rendering`); a template that fails for any
    reason raises `TemplateFailed`, one line naming the template and the line.
    """
    from agentdesk.domain.templates import rendering

    source = template.body if isinstance(template, Template) else template
    name = template.name if isinstance(template, Template) else "template"
    if len(source) > rendering.MAX_SOURCE:
        raise TemplateFailed(
            name, None, f"is {len(source):,} characters long; templates are limited to {rendering.MAX_SOURCE:,}"
        )
    missing: list[str] = []
    present = {key: value for key, value in values.items() if value or key in optional}
    try:
        budget = rendering.Budget()
        environment = rendering.BoundedEnvironment(undefined=_undefined_type(missing), budget=budget)
        compiled = environment.compile_checked(source)
        pieces, length = [], 0
        for piece in compiled.generate(**present):
            length += len(piece)
            if length > rendering.MAX_SIZE:
                raise rendering.LimitExceeded(f"its text would be more than {rendering.MAX_SIZE:,} characters long")
            pieces.append(piece)
            budget.tick()
        text = "".join(pieces)
    except Exception as error:  # noqa: BLE001  whatever the template's code raised, the agent gets one line
        raise TemplateFailed(name, rendering.line_of(error), rendering.describe(error)) from None
    return Rendered(text=text, undefined=tuple(missing))


def first_name(full_name: str) -> str:
    parts = full_name.split()
    if not parts or "@" in parts[0] or parts[0].startswith("+"):
        return ""
    return parts[0]


# --- picking templates: fuzzy search and suggestions for a thread -------------------------------

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
# Words that say nothing about what a conversation is about.
_STOPWORDS = frozenset(
    "the and for you your are was were this that with have has had not but can could would will "
    "what when where which who how all any our out get got just like also from into been being "
    "they them their there then than thanks thank hello dear best regards please hi its it's "
    "customer_first_name agent_name ref due".split()
)


def _words(text: str) -> list[str]:
    return [word for word in (w.lower() for w in _WORD.findall(text)) if word not in _STOPWORDS]


def suggest(candidates: list[Template], thread_text: str, *, limit: int = 3) -> list[tuple[Template, float]]:
    """The templates most similar to the thread, best first: TF-IDF cosine over words.

    Scores are in 0..1; templates sharing no word with the thread are left out. The template's
    name and description count alongside its body (they say what it is for).
    """
    import math
    from collections import Counter

    if not candidates:
        return []
    documents = [Counter(_words(f"{t.name.replace('-', ' ')} {t.description} {t.body}")) for t in candidates]
    query = Counter(_words(thread_text))
    if not query:
        return []
    frequency = Counter(word for document in documents for word in document)
    total = len(documents)

    def weight(word: str) -> float:
        return math.log((1 + total) / (1 + frequency.get(word, 0))) + 1

    query_vector = {word: (1 + math.log(count)) * weight(word) for word, count in query.items()}
    query_norm = math.sqrt(sum(v * v for v in query_vector.values()))
    scored = []
    for template, document in zip(candidates, documents):
        vector = {word: (1 + math.log(count)) * weight(word) for word, count in document.items()}
        norm = math.sqrt(sum(v * v for v in vector.values()))
        dot = sum(value * query_vector.get(word, 0.0) for word, value in vector.items())
        if dot > 0 and norm:
            scored.append((template, dot / (norm * query_norm)))
    scored.sort(key=lambda pair: (-pair[1], pair[0].name))
    return scored[:limit]


def _fuzzy_score(needle: str, haystack: str) -> float | None:
    """Higher is better; None when the letters of `needle` do not appear in order in `haystack`."""
    if not needle:
        return 0.0
    if haystack == needle:
        return 100.0
    if haystack.startswith(needle):
        return 80.0 - len(haystack) / 100
    if needle in haystack:
        return 60.0 - haystack.index(needle) / 10
    position, gaps = 0, 0
    for letter in needle:
        found = haystack.find(letter, position)
        if found < 0:
            return None
        gaps += found - position
        position = found + 1
    return 40.0 - gaps


def find(candidates: list[Template], query: str) -> list[Template]:
    """Templates matching `query` by shortcut or name (fuzzy, letters in order), best first."""
    needle = query.strip().lower()
    scored = []
    for template in candidates:
        scores = [_fuzzy_score(needle, template.name.lower())]
        if template.shortcut:
            score = _fuzzy_score(needle, template.shortcut.lower())
            scores.append(score + 10 if score is not None else None)
        if needle and needle in template.description.lower():
            scores.append(30.0)  # a word of the description, never scattered letters
        best = max((s for s in scores if s is not None), default=None)
        if best is not None:
            scored.append((best if needle else 0.0, template))
    scored.sort(key=lambda pair: (-pair[0], pair[1].name))
    return [template for _, template in scored]


PLACEHOLDER_MARK = re.compile(r"\[\[([A-Za-z_][A-Za-z0-9_]*)\?\]\]")


def unfilled(text: str) -> list[str]:
    """The `[[name?]]` markers `render` left for undefined placeholders that are still in `text`."""
    return list(dict.fromkeys(PLACEHOLDER_MARK.findall(text)))


def values_for(conversation, customer, *, agent_name: str, agent_signature: str) -> dict[str, str]:
    """The placeholder values of a conversation (VARIABLES), for the CLI and the composer alike."""
    from agentdesk.store.models import ref_of

    name = customer.name if customer is not None else ""
    due = conversation.next_response_due or conversation.first_response_due
    return {
        "customer_name": name,
        "customer_first_name": first_name(name),
        "agent_name": agent_name,
        "agent_signature": agent_signature,
        "ref": ref_of(conversation.id),
        "subject": conversation.subject,
        "channel": conversation.channel,
        # Local time of the machine agentdesk runs on; the receipt formats its own ETA per calendar.
        "due": due.astimezone().strftime("%A %d %B, %H:%M") if due else "",
    }
