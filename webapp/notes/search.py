"""Turning a user's search words into an FTS5 query that can never be a syntax error.

Every whitespace-separated token becomes a quoted FTS5 string, so operators (AND, OR,
NOT, NEAR), column filters, prefix stars, parentheses and quotes are matched as plain
text instead of being parsed. Tokens are implicitly ANDed.
"""

from __future__ import annotations

Q_MAX = 500
TOKENS_MAX = 32


def fts_query(q: str) -> str | None:
    """The MATCH expression for `q`, or None when `q` holds no words."""
    tokens = q.replace("\x00", " ").split()[:TOKENS_MAX]
    if not tokens:
        return None
    return " ".join('"' + token.replace('"', '""') + '"' for token in tokens)
