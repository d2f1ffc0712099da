"""The spec's type grammar: parse a type string once, render it per language.

Grammar (a subset of Python's annotation syntax, so the spec reads naturally):

    union := atom ("|" atom)*
    atom  := NAME ("[" union ("," union)* "]")? | "[" union ("," union)* "]" | "..."

NAME is a builtin of VOCABULARY or a name the spec defines (a class, dataclass,
alias or native class). A bracketed list without a name only appears as the
parameter list of Callable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# name -> (Python module to import it from or None for builtins, number of type
# arguments: None = any, 0 = bare only)
VOCABULARY: dict[str, tuple[str | None, int | None]] = {
    "str": (None, 0),
    "int": (None, 0),
    "float": (None, 0),
    "bool": (None, 0),
    "bytes": (None, 0),
    "None": (None, 0),
    "dict": (None, 2),
    "list": (None, 1),
    "tuple": (None, None),
    "Any": ("typing", 0),
    "Sequence": ("collections.abc", 1),
    "Callable": ("collections.abc", 2),
    "Awaitable": ("collections.abc", 1),
    "datetime": ("datetime", 0),
    "timedelta": ("datetime", 0),
    # Node's own: only on items whose `languages` is [node].
    "AbortSignal": (None, 0),
}

#: Names that exist in one language only (see `Param.languages`).
NODE_ONLY = frozenset({"AbortSignal"})

_TOKEN = re.compile(r"\s*(?:(\.\.\.)|([A-Za-z_][A-Za-z0-9_]*)|([\[\],|]))")


class TypeSyntaxError(ValueError):
    """A type string does not follow the grammar or names an unknown type."""


@dataclass(frozen=True)
class Name:
    name: str
    args: tuple[Type, ...] | None = None


@dataclass(frozen=True)
class TypeList:
    items: tuple[Type, ...]


@dataclass(frozen=True)
class Ellipsis_:
    pass


@dataclass(frozen=True)
class Union:
    items: tuple[Type, ...]


Type = Name | TypeList | Ellipsis_ | Union


def parse(text: str, known: set[str] | frozenset[str] = frozenset()) -> Type:
    """Parse `text`; names must be in VOCABULARY or `known`."""
    tokens = _tokenize(text)
    parser = _Parser(text, tokens, known)
    result = parser.union()
    if parser.pos != len(tokens):
        raise TypeSyntaxError(f"unexpected {tokens[parser.pos]!r} in type {text!r}")
    return result


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if not match:
            raise TypeSyntaxError(f"cannot read type {text!r} at {stripped[pos:]!r}")
        tokens.append(match.group(match.lastindex or 0))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, tokens: list[str], known: set[str] | frozenset[str]):
        self.text = text
        self.tokens = tokens
        self.known = known
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            want = repr(expected) if expected else "a type"
            raise TypeSyntaxError(f"expected {want} in type {self.text!r}")
        self.pos += 1
        return token

    def union(self) -> Type:
        items = [self.atom()]
        while self.peek() == "|":
            self.take("|")
            items.append(self.atom())
        return items[0] if len(items) == 1 else Union(tuple(items))

    def args(self) -> tuple[Type, ...]:
        self.take("[")
        items = [self.union()]
        while self.peek() == ",":
            self.take(",")
            items.append(self.union())
        self.take("]")
        return tuple(items)

    def atom(self) -> Type:
        token = self.take()
        if token == "...":
            return Ellipsis_()
        if token == "[":
            self.pos -= 1
            return TypeList(self.args())
        if not token[0].isalpha() and token[0] != "_":
            raise TypeSyntaxError(f"unexpected {token!r} in type {self.text!r}")
        if token not in VOCABULARY and token not in self.known:
            raise TypeSyntaxError(f"unknown type name {token!r} in type {self.text!r}")
        args = self.args() if self.peek() == "[" else None
        arity = VOCABULARY[token][1] if token in VOCABULARY else 0
        if args is not None and arity == 0:
            raise TypeSyntaxError(f"{token} takes no type arguments in {self.text!r}")
        if args is not None and arity is not None and len(args) != arity:
            raise TypeSyntaxError(
                f"{token} takes {arity} type argument(s) in {self.text!r}"
            )
        return Name(token, args)


def names(node: Type) -> set[str]:
    """Every NAME used in `node`."""
    if isinstance(node, Name):
        found = {node.name}
        for arg in node.args or ():
            found |= names(arg)
        return found
    if isinstance(node, TypeList | Union):
        found = set()
        for item in node.items:
            found |= names(item)
        return found
    return set()


def includes_none(node: Type) -> bool:
    """True if None is one of the alternatives of `node`."""
    if isinstance(node, Union):
        return any(includes_none(item) for item in node.items)
    return isinstance(node, Name) and node.name == "None"


def to_python(node: Type) -> str:
    """Render `node` as a Python annotation."""
    if isinstance(node, Name):
        if node.args is None:
            return node.name
        return f"{node.name}[{', '.join(to_python(a) for a in node.args)}]"
    if isinstance(node, TypeList):
        return f"[{', '.join(to_python(i) for i in node.items)}]"
    if isinstance(node, Union):
        return " | ".join(to_python(i) for i in node.items)
    return "..."


def with_none(node: Type) -> Type:
    """`node | None` (unchanged if it already admits None)."""
    if includes_none(node):
        return node
    items = node.items if isinstance(node, Union) else (node,)
    return Union((*items, Name("None")))


# TypeScript renderings of the builtins. A duration (`timedelta`) is a number
# of milliseconds in Node, and bytes are a Buffer (any Uint8Array on input).
_TS_NAMES = {
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
    "bytes": "Buffer",
    "None": "null",
    "Any": "any",
    "datetime": "Date",
    "timedelta": "number",
    "AbortSignal": "AbortSignal",
}


def to_ts(node: Type, rename: dict[str, str] | None = None) -> str:
    """Render `node` as a TypeScript type; `rename` maps spec names to Node names."""
    rename = rename or {}
    if isinstance(node, Union):
        parts: list[str] = []
        for item in node.items:
            text = to_ts(item, rename)
            if text == "any":
                return "any"
            if text not in parts:
                parts.append(text)
        return " | ".join(parts)
    if isinstance(node, Name):
        args = node.args or ()
        if node.name in _TS_NAMES:
            return _TS_NAMES[node.name]
        if node.name == "dict":
            return f"Record<{to_ts(args[0], rename)}, {to_ts(args[1], rename)}>"
        if node.name == "list":
            return f"Array<{to_ts(args[0], rename)}>"
        if node.name == "Sequence":
            return f"ReadonlyArray<{to_ts(args[0], rename)}>"
        if node.name == "tuple":
            if not args:
                return "Array<any>"
            if len(args) == 2 and isinstance(args[1], Ellipsis_):
                return f"Array<{to_ts(args[0], rename)}>"
            return "[" + ", ".join(to_ts(a, rename) for a in args) + "]"
        if node.name == "Awaitable":
            inner = to_ts(args[0], rename)
            return "any" if inner == "any" else f"{inner} | PromiseLike<{inner}>"
        if node.name == "Callable":
            params, result = args
            items = params.items if isinstance(params, TypeList) else ()
            names = [_arg_name(item, i) for i, item in enumerate(items)]
            listed = ", ".join(
                f"{n}: {to_ts(item, rename)}"
                for n, item in zip(names, items, strict=True)
            )
            return f"({listed}) => {to_ts(result, rename)}"
        return rename.get(node.name, node.name)
    raise TypeSyntaxError(f"cannot render {node!r} in TypeScript")


def _arg_name(node: Type, index: int) -> str:
    """A readable parameter name for a Callable argument: `Job` -> `job`."""
    if isinstance(node, Name) and node.name[:1].isupper() and node.args is None:
        return node.name[:1].lower() + node.name[1:]
    return f"arg{index}"
