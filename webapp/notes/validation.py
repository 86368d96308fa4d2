"""Turning an untrusted request body into a valid note, or a precise problem.

The limits here and in openapi.json must agree; a test compares them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from webapp.http.problems import Problem

TITLE_MAX = 200
BODY_MAX = 102_400  # characters: "100 KB" of text
TAGS_MAX = 20
TAG_MAX = 50
FIELDS = ("title", "body", "tags")
ERRORS_MAX = 50


@dataclass
class NoteInput:
    title: str
    body: str = ""
    tags: list[str] = field(default_factory=list)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Decode strict UTF-8 JSON; anything malformed is a 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise Problem(400, "request body is nested too deeply to be a note") from None
    except ValueError as exc:
        # JSONDecodeError, NaN/Infinity, and integers beyond Python's digit limit.
        raise Problem(400, f"request body is not valid JSON: {_short(str(exc))}") from None


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


def _text_error(value: Any, *, minimum: int, maximum: int) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {_json_type(value)}"
    if len(value) < minimum:
        return f"must have at least {minimum} character" + ("s" if minimum > 1 else "")
    if len(value) > maximum:
        return f"must have at most {maximum} characters, got {len(value)}"
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds an unpaired surrogate)"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def validate(data: Any) -> NoteInput:
    """A complete note (POST and PUT both send the whole note), or a 422 naming fields."""
    if not isinstance(data, dict):
        raise Problem(
            422,
            f"request body must be a JSON object, not {_json_type(data)}",
            errors=[{"field": "(body)", "message": "must be a JSON object"}],
        )
    errors: list[dict[str, str]] = []
    for name in sorted(set(data) - set(FIELDS)):
        errors.append({"field": _short(name, 60), "message": "is not a known field"})
    if "title" not in data:
        errors.append({"field": "title", "message": "is required"})
    elif message := _text_error(data["title"], minimum=1, maximum=TITLE_MAX):
        errors.append({"field": "title", "message": message})
    body = data.get("body", "")
    if message := _text_error(body, minimum=0, maximum=BODY_MAX):
        errors.append({"field": "body", "message": message})
    tags = data.get("tags", [])
    if not isinstance(tags, list):
        errors.append({"field": "tags", "message": f"must be an array, not {_json_type(tags)}"})
    elif len(tags) > TAGS_MAX:
        errors.append({"field": "tags", "message": f"must have at most {TAGS_MAX} items"})
    else:
        tag_errors = [
            {"field": f"tags[{index}]", "message": message}
            for index, tag in enumerate(tags)
            if (message := _text_error(tag, minimum=1, maximum=TAG_MAX))
        ]
        errors.extend(tag_errors)
        if not tag_errors and len(set(tags)) != len(tags):
            errors.append({"field": "tags", "message": "must not repeat a tag"})
    if errors:
        # Bounded: a body with thousands of unknown keys must not echo them all back.
        names = list(dict.fromkeys(e["field"] for e in errors))
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise Problem(422, f"invalid note: check {shown}", errors=errors[:ERRORS_MAX])
    return NoteInput(title=data["title"], body=body, tags=list(tags))
