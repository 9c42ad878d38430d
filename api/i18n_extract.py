"""Babel extraction methods for the message ids that `_()` calls alone do not show.

`babel.cfg` maps the Python sources to `python_texts`, the templates to `jinja_texts` and
`api/i18n.py` to `families`, so that `make messages-extract` (pybabel extract) lists every
id the code uses. Without them, `make messages-update` would mark the ids that controllers
read as `TEXTS[lang]["id"]` and the ids composed from domain values
(`text_for("status_", status)`) obsolete in both catalogues.
tests/api/test_i18n_catalogues.py runs the same extraction.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from io import BytesIO
from typing import IO, Any

from babel.messages.extract import extract_python
from jinja2 import Environment, nodes
from jinja2.ext import babel_extract

#: Names that hold a language's texts in the controllers: `t = TEXTS[lang]`, `texts`.
TEXT_MAPPINGS = frozenset({"t", "texts"})

#: (line, function name, message id or the ids of a plural, comments), as Babel's own
#: extractors yield them: Babel types the last two inexactly, so they stay open here.
Extracted = tuple[int, str | tuple[str, ...], Any, Any]


def python_texts(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[Extracted]:
    """Babel's Python extraction (`_`, `gettext`, `ngettext`, ...) plus literal reads of a
    text mapping: `t["id"]`, `t.get("id", ...)`, `TEXTS[lang]["id"]`."""
    source = fileobj.read()
    yield from extract_python(
        BytesIO(source),
        keywords,
        comment_tags,
        # Why the ignore below: Babel types this as its private _PyOptions TypedDict; pybabel
        # passes the plain mapping of babel.cfg's options
        options,  # type: ignore[arg-type]
    )
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.expr):  # the reads are expressions (they have a line)
            continue
        msgid = _mapping_read(node)
        if msgid:
            yield node.lineno, "_", msgid, []


def jinja_texts(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[Extracted]:
    """Jinja2's extraction (`_()`, `ngettext()`, `{% trans %}`) plus reads of the `t`
    mapping that older templates still pass (`t.id`, `t["id"]`)."""
    source = fileobj.read()
    yield from babel_extract(BytesIO(source), list(keywords), list(comment_tags), dict(options))
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)  # as the app renders
    tree = env.parse(source.decode("utf-8"))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        msgid = _template_read(node) if isinstance(node, nodes.Getattr | nodes.Getitem) else None
        if msgid:
            yield node.lineno, "_", msgid, []


def families(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Iterator[Extracted]:
    """The ids of `api.i18n.FAMILIES`: a prefix and every domain value it labels."""
    from api.i18n import FAMILIES

    for prefix, values in FAMILIES.items():
        for value in values:
            yield 1, "_", f"{prefix}{value}", [f"family {prefix}"]


def _template_read(node: nodes.Getattr | nodes.Getitem) -> str | None:
    """The literal id of `t.id` or `t["id"]` in a template, else None."""
    if not (isinstance(node.node, nodes.Name) and node.node.name in TEXT_MAPPINGS):
        return None
    if isinstance(node, nodes.Getattr):
        return None if node.attr in ("get", "items", "keys", "values") else node.attr
    arg = node.arg
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def _is_text_mapping(node: ast.AST) -> bool:
    """`t`, `texts` or `TEXTS[...]`."""
    if isinstance(node, ast.Name):
        return node.id in TEXT_MAPPINGS
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "TEXTS"
    )


def _mapping_read(node: ast.AST) -> str | None:
    """The literal id of `t["id"]` or `t.get("id", ...)`, else None."""
    if isinstance(node, ast.Subscript) and _is_text_mapping(node.value):
        key = node.slice
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and _is_text_mapping(node.func.value)
        and node.args
    ):
        key = node.args[0]
    else:
        return None
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value
    return None
