"""The generic webhook format (docs/webhook-schema.md) as a JSON Schema, and a validator for it.

The schema lives here as data so the package needs no data files; `docs/webhook-schema.json` is
the same document written out (a test keeps the two identical). The validator implements the
subset of JSON Schema (draft 2020-12) this schema uses — type, const, enum, required,
properties, additionalProperties, items, minLength, maxLength, minimum, minItems, format
date-time, anyOf, if/then/else — and reports the first error with its JSON path, e.g.
`$.sender.phone: expected a string, got a number`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

SCHEMA_ID = "https://agentdesk.invalid/schemas/webhook-1.json"

_PARTY = {
    "type": "object",
    "description": "A person or account: at least one of email, phone, handle.",
    "properties": {
        "name": {"type": "string", "maxLength": 500, "description": "Display name."},
        "email": {"type": "string", "minLength": 3, "maxLength": 320, "description": "Email address."},
        "phone": {
            "type": "string",
            "minLength": 3,
            "maxLength": 64,
            "description": "Phone number in E.164 (+31612345678); normalised by agentdesk.",
        },
        "handle": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "The provider's handle or contact id (chat, social); prefix it with the provider, e.g. 'telegram:4711'.",
        },
    },
    "additionalProperties": False,
    "anyOf": [{"required": ["email"]}, {"required": ["phone"]}, {"required": ["handle"]}],
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "agentdesk generic webhook event",
    "description": 'One inbound message, or one delivery status of an outbound message, as written to a spool with adapter = "generic"; also the format of replies written to an outbound spool.',
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "description": "Event id, unique per message at the sender: the message's external id (dedupe key).",
        },
        "type": {"enum": ["message", "status"], "description": "message (default) or status."},
        "kind": {
            "enum": ["email", "sms", "chat", "webform", "social"],
            "description": "Channel kind; default: the spool's kind.",
        },
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "When the customer sent it, RFC 3339 with offset; default: when the file was written.",
        },
        "sender": _PARTY,
        "recipient": _PARTY,
        "conversation": {
            "type": "object",
            "description": "Threading hints: our ref, or the provider's own conversation key.",
            "properties": {
                "ref": {"type": "string", "maxLength": 64, "description": "Our conversation ref, e.g. AD-1042."},
                "thread_key": {
                    "type": "string",
                    "maxLength": 500,
                    "description": "The provider's conversation key; messages with the same key join one conversation.",
                },
            },
            "additionalProperties": False,
        },
        "in_reply_to": {"type": "string", "maxLength": 500, "description": "Id of the message this one answers."},
        "subject": {"type": "string", "maxLength": 2000},
        "text": {"type": "string", "description": "The message as plain text."},
        "html": {"type": "string", "description": "The message as HTML (turned into text; never rendered)."},
        "attachments": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "maxLength": 1000,
                        "description": "The sender's file name (display only).",
                    },
                    "content_type": {"type": "string", "maxLength": 255},
                    "url": {
                        "type": "string",
                        "minLength": 1,
                        "description": "Where the file can be fetched (never fetched at ingest).",
                    },
                    "base64": {"type": "string", "description": "The file's bytes, base64-encoded."},
                    "size": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": False,
                "anyOf": [{"required": ["url"]}, {"required": ["base64"]}],
            },
        },
        "status": {
            "type": "object",
            "required": ["message_id", "state"],
            "properties": {
                "message_id": {"type": "string", "minLength": 1, "description": "The id of our outbound message."},
                "state": {"enum": ["queued", "sent", "delivered", "read", "failed"]},
                "error": {"type": "string", "maxLength": 2000},
            },
            "additionalProperties": False,
        },
        "metadata": {"type": "object", "description": "Anything else; kept in the raw payload, not interpreted."},
    },
    "additionalProperties": False,
    "if": {"properties": {"type": {"const": "status"}}, "required": ["type"]},
    "then": {"required": ["status"]},
    "else": {
        "required": ["sender"],
        "anyOf": [{"required": ["text"]}, {"required": ["html"]}, {"required": ["attachments"]}],
    },
}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return {
                "integer": "a number",
                "number": "a number",
                "array": "an array",
                "object": "an object",
                "null": "null",
                "boolean": "a boolean",
                "string": "a string",
            }[name]
    return type(value).__name__


class SchemaError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def validate(instance: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> None:
    """Raise SchemaError (with the JSON path) at the first way `instance` breaks `schema`."""
    if "type" in schema:
        expected = schema["type"]
        names = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES[name](instance) for name in names):
            article = " or ".join(("an " if n[0] in "aeiou" else "a ") + n for n in names)
            raise SchemaError(path, f"expected {article}, got {json_type(instance)}")
    if "const" in schema and instance != schema["const"]:
        raise SchemaError(path, f"expected {schema['const']!r}, got {instance!r}")
    if "enum" in schema and instance not in schema["enum"]:
        raise SchemaError(path, f"expected one of {', '.join(map(str, schema['enum']))}, got {instance!r}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            raise SchemaError(
                path,
                "must not be empty" if schema["minLength"] == 1 else f"shorter than {schema['minLength']} characters",
            )
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            raise SchemaError(path, f"longer than {schema['maxLength']} characters ({len(instance)})")
        if schema.get("format") == "date-time":
            _check_date_time(instance, path)
    if _TYPES["number"](instance) and "minimum" in schema and instance < schema["minimum"]:
        raise SchemaError(path, f"must be at least {schema['minimum']}, got {instance}")
    if isinstance(instance, dict):
        for name in schema.get("required", []):
            if name not in instance:
                raise SchemaError(path, f"required field {name!r} is missing")
        properties = schema.get("properties", {})
        for name, value in instance.items():
            if name in properties:
                validate(value, properties[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                known = ", ".join(properties)
                raise SchemaError(path, f"unknown field {name!r} (known: {known})")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            raise SchemaError(path, f"needs at least {schema['minItems']} items")
        if "items" in schema:
            for index, item in enumerate(instance):
                validate(item, schema["items"], f"{path}[{index}]")
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                validate(instance, option, path)
                break
            except SchemaError as error:
                errors.append(str(error).split(": ", 1)[1])
        else:
            raise SchemaError(path, "needs one of: " + "; ".join(errors))
    if "if" in schema:
        try:
            validate(instance, schema["if"], path)
            branch = schema.get("then")
        except SchemaError:
            branch = schema.get("else")
        if branch is not None:
            validate(instance, branch, path)


def _check_date_time(value: str, path: str) -> None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SchemaError(path, f"expected an RFC 3339 time like 2026-11-24T09:30:00Z, got {value!r}") from None
    if parsed.tzinfo is None:
        raise SchemaError(path, f"the time {value!r} has no UTC offset; add Z or +hh:mm")


def schema_document() -> str:
    """The schema as written to docs/webhook-schema.json."""
    return json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n"
