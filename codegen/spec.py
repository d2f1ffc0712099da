"""Load spec/api.yaml: schema validation, then a typed model with cross-checks.

Every problem is reported as a SpecError naming the spec file and the path in
it, e.g. `spec/api.yaml: classes[Queue].methods[add].params[delay]: ...`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from codegen import typeexpr
from codegen.typeexpr import Type

SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent / "spec" / "schema" / "api.schema.json"
)

# Rule names that would shadow a Python builtin inside chasquimq/_validate.py
# get a trailing underscore there (PEP 8), e.g. rule `str` -> `_validate.str_`.
_BUILTIN_RULES = {"str", "bool", "int", "callable"}


class SpecError(Exception):
    """The spec is invalid; the message names the file and the path in it."""


def rule_function(rule: str) -> str:
    """Name of the function of chasquimq/_validate.py implementing `rule`."""
    return rule + "_" if rule in _BUILTIN_RULES else rule


def camel(name: str) -> str:
    """Node's default name for a snake_case Python name."""
    prefix = "_" if name.startswith("_") else ""
    head, *rest = name.lstrip("_").split("_")
    return prefix + head + "".join(part[:1].upper() + part[1:] for part in rest)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


@dataclass
class Param:
    name: str
    node_name: str
    kind: str  # "positional" | "keyword"
    type: Type
    has_default: bool
    default: Any
    engine_default: bool
    rules: list[str]
    doc: str
    # Node overrides (`node: {name, default, doc}`); None means as above.
    node_doc: str | None = None
    node_has_default: bool | None = None
    node_default: Any = None
    # `engine_default: "<text>"`: the engine computes the default; the text
    # says how (it stands where the value would in the docs).
    engine_default_doc: str | None = None
    # `languages: [python]`: the surfaces that have this parameter (a
    # setting that means nothing in the other language, e.g. a thread pool).
    languages: tuple[str, ...] = ("python", "node")

    @property
    def engine_default_text(self) -> str:
        return self.engine_default_doc or repr(self.default)

    @property
    def keyword(self) -> bool:
        return self.kind == "keyword"

    @property
    def py_type(self) -> str:
        node = typeexpr.with_none(self.type) if self.engine_default else self.type
        return typeexpr.to_python(node)

    @property
    def py_default(self) -> str | None:
        """The default in the Python signature (source text), None if required."""
        if self.engine_default:
            return "None"
        return py_literal(self.default) if self.has_default else None

    @property
    def optional(self) -> bool:
        """None is accepted and means "not given"; rules run only on other values."""
        return self.engine_default or typeexpr.includes_none(self.type)

    @property
    def rule_functions(self) -> list[str]:
        return [rule_function(rule) for rule in self.rules]


@dataclass
class Check:
    kind: str  # "mutually_exclusive" | "requires"
    params: list[str]  # mutually_exclusive: the params; requires: [param, required]


@dataclass
class ErrorCode:
    code: str
    name: str
    node_name: str
    bases: list[str]
    doc: str
    node_base: str | None = None  # a builtin JS error class, e.g. "TypeError"
    # A more specific kind of another code's error: its class extends that
    # class (so catching the parent catches it) in both languages.
    parent: ErrorCode | None = None


@dataclass
class Raise:
    error: ErrorCode
    when: str


@dataclass
class Method:
    name: str
    node_name: str
    is_async: bool
    doc: str
    params: list[Param]
    checks: list[Check]
    returns: Type | None
    returns_doc: str | None
    raises: list[Raise]
    public: bool = False  # native functions: re-exported by the package
    node_doc: str | None = None

    @property
    def positional(self) -> list[Param]:
        return [p for p in self.params if not p.keyword]

    @property
    def keywords(self) -> list[Param]:
        return [p for p in self.params if p.keyword]

    @property
    def py_returns(self) -> str:
        return typeexpr.to_python(self.returns) if self.returns is not None else "None"

    @property
    def forward_args(self) -> str:
        """Arguments of the call to the base: positional ones by position, the rest
        by name."""
        args = [p.name for p in self.positional]
        args += [f"{p.name}={p.name}" for p in self.keywords]
        return ", ".join(args)


@dataclass
class Property:
    name: str
    node_name: str
    type: Type
    alias_of: str | None
    doc: str
    languages: tuple[str, ...] = ("python", "node")

    @property
    def py_type(self) -> str:
        return typeexpr.to_python(self.type)


@dataclass
class Field:
    name: str
    node_name: str
    type: Type
    has_default: bool
    default: Any
    repr: bool
    compare: bool
    doc: str
    node_doc: str | None = None

    @property
    def py_type(self) -> str:
        return typeexpr.to_python(self.type)

    @property
    def py_default(self) -> str | None:
        """Default as source text for the dataclass body, None if required."""
        if not self.has_default:
            return None
        literal = py_literal(self.default)
        if self.repr and self.compare:
            return literal
        flags = "".join(
            f", {flag}=False"
            for flag, on in (("repr", self.repr), ("compare", self.compare))
            if not on
        )
        return f"field(default={literal}{flags})"


@dataclass
class DataClass:
    name: str
    node_name: str
    frozen: bool
    doc: str
    base: str | None  # "module.Class"
    slots: bool
    fields: list[Field]
    properties: list[Property]
    methods: list[Method]
    factories: list[Method]
    node_base: str | None = (
        None  # "module.Class", module relative to the TS source root
    )
    node_doc: str | None = None


@dataclass
class Alias:
    name: str
    node_name: str
    type: Type
    doc: str
    node_doc: str | None = None

    @property
    def py_type(self) -> str:
        return typeexpr.to_python(self.type)


@dataclass
class ApiClass:
    name: str
    node_name: str
    base: str
    protocols: list[str]
    iterates: Type | None
    doc: str
    init: Method
    properties: list[Property]
    methods: list[Method]
    node_base: str | None = (
        None  # "module.Class", module relative to the TS source root
    )
    node_doc: str | None = None


@dataclass
class NativeClass:
    name: str
    public: bool
    doc: str | None
    init: Method
    methods: list[Method]


@dataclass
class Spec:
    source: str  # the spec's path as shown in generated headers
    package: str
    root_error: ErrorCode
    errors: list[ErrorCode]
    dataclasses: list[DataClass]
    aliases: list[Alias]
    classes: list[ApiClass]
    native_module: str
    native_functions: list[Method]
    native_classes: list[NativeClass]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def public_native(self) -> list[str]:
        names = [c.name for c in self.native_classes if c.public]
        return names + [f.name for f in self.native_functions if f.public]

    def for_language(self, language: str) -> Spec:
        """This spec without the parameters other languages alone have."""
        spec = copy.deepcopy(self)
        methods: list[Method] = []
        for cls in spec.classes:
            methods += [cls.init, *cls.methods]
        for dc in spec.dataclasses:
            methods += [*dc.methods, *dc.factories]
        for m in methods:
            m.params = [p for p in m.params if language in p.languages]
        for owner in [*spec.classes, *spec.dataclasses]:
            owner.properties = [p for p in owner.properties if language in p.languages]
        return spec


def py_literal(value: Any) -> str:
    """Python source text of a YAML scalar."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def base_parts(base: str) -> tuple[str, str]:
    """("chasquimq._queue", "QueueBase") from "chasquimq._queue.QueueBase"."""
    module, _, name = base.rpartition(".")
    return module, name


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load(path: Path, source: str | None = None) -> Spec:
    """Read, schema-validate and cross-check the spec at `path`."""
    shown = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{shown}: cannot read: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{shown}: not valid YAML: {exc}") from exc
    validate_schema(raw, shown)
    return _Builder(raw, shown).build()


def validate_schema(raw: Any, shown: str) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))
    )
    if not errors:
        return
    lines = []
    for error in errors:
        best = jsonschema.exceptions.best_match([error])
        lines.append(f"{shown}: {format_path(raw, best.absolute_path)}: {best.message}")
    raise SpecError("spec does not match the schema:\n" + "\n".join(lines))


def format_path(raw: Any, path: Any) -> str:
    """`classes[Queue].methods[add].params[0]`: list items by name when named."""
    out = ""
    node = raw
    for key in path:
        if isinstance(key, int):
            item = node[key] if isinstance(node, list) and key < len(node) else None
            label = (
                item.get("name", item.get("code")) if isinstance(item, dict) else None
            )
            out += f"[{label}]" if isinstance(label, str) else f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    return out or "(top level)"


class _Builder:
    def __init__(self, raw: dict[str, Any], shown: str):
        self.raw = raw
        self.shown = shown
        self.known: set[str] = set()
        self.errors_by_code: dict[str, ErrorCode] = {}
        self.groups: dict[str, list[str]] = {}

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.shown}: {where}: {message}")

    def build(self) -> Spec:
        raw = self.raw
        errors_raw = raw["errors"]
        root = errors_raw["root"]
        root_error = ErrorCode(
            root["code"], root["name"], root["name"], [], root["doc"]
        )
        errors = []
        for err in errors_raw["codes"]:
            where = f"errors.codes[{err['code']}]"
            if err["code"] in self.errors_by_code or err["code"] == root["code"]:
                raise self.fail(where, f"duplicate error code {err['code']!r}")
            parent = None
            if "parent" in err:
                parent = self.errors_by_code.get(err["parent"])
                if parent is None:
                    raise self.fail(
                        f"{where}.parent",
                        f"unknown error code {err['parent']!r}; a parent must come "
                        "earlier in errors.codes",
                    )
                if err.get("node", {}).get("base") or parent.node_base:
                    raise self.fail(
                        f"{where}.parent",
                        "an error with a parent extends the parent, so neither may "
                        "name a node base",
                    )
            error = ErrorCode(
                err["code"],
                err["name"],
                err.get("node_name", err["name"]),
                err.get("python", {}).get("bases", []),
                err["doc"],
                err.get("node", {}).get("base"),
                parent,
            )
            self.errors_by_code[error.code] = error
            errors.append(error)
        self._unique(
            [root_error.name] + [e.name for e in errors], "errors", "error class name"
        )
        for group, codes in errors_raw.get("groups", {}).items():
            if group in self.errors_by_code:
                raise self.fail(
                    f"errors.groups.{group}", "a group may not be named like a code"
                )
            for code in codes:
                if code not in self.errors_by_code:
                    raise self.fail(
                        f"errors.groups.{group}", f"unknown error code {code!r}"
                    )
            self.groups[group] = codes

        native = raw.get("native", {})
        native_class_names = [c["name"] for c in native.get("classes", [])]
        type_names = (
            [d["name"] for d in raw.get("dataclasses", [])]
            + [a["name"] for a in raw.get("aliases", [])]
            + [c["name"] for c in raw.get("classes", [])]
        )
        self._unique(
            type_names
            + native_class_names
            + [root_error.name]
            + [e.name for e in errors],
            "(top level)",
            "public name",
        )
        self.known = set(type_names) | set(native_class_names)

        dataclasses = [self._dataclass(d) for d in raw.get("dataclasses", [])]
        aliases = [
            Alias(
                a["name"],
                a.get("node_name", a["name"]),
                self._type(a["type"], f"aliases[{a['name']}].type"),
                a["doc"],
                a.get("node", {}).get("doc"),
            )
            for a in raw.get("aliases", [])
        ]
        classes = [self._class(c) for c in raw.get("classes", [])]
        native_functions = []
        for fn in native.get("functions", []):
            method = self._method(fn, f"native.functions[{fn['name']}]", native=True)
            method.public = fn.get("public", False)
            native_functions.append(method)
        native_classes = []
        for cls in native.get("classes", []):
            where = f"native.classes[{cls['name']}]"
            init = self._method(
                {
                    "name": "__init__",
                    "params": cls["init"]["params"],
                    "returns": {"type": "None"},
                },
                f"{where}.init",
                native=True,
            )
            methods = [
                self._method(m, f"{where}.methods[{m['name']}]", native=True)
                for m in cls.get("methods", [])
            ]
            self._unique([m.name for m in methods], where, "method")
            native_classes.append(
                NativeClass(
                    cls["name"], cls.get("public", False), cls.get("doc"), init, methods
                )
            )
        return Spec(
            source=self.shown,
            package=raw["package"],
            root_error=root_error,
            errors=errors,
            dataclasses=dataclasses,
            aliases=aliases,
            classes=classes,
            native_module=native.get("module", f"{raw['package']}._native"),
            native_functions=native_functions,
            native_classes=native_classes,
            raw=raw,
        )

    def _unique(self, names: list[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise self.fail(where, f"duplicate {what} {name!r}")
            seen.add(name)

    def _type(self, text: str, where: str) -> Type:
        try:
            return typeexpr.parse(text, self.known)
        except typeexpr.TypeSyntaxError as exc:
            raise self.fail(where, str(exc)) from None

    def _param(self, raw: dict[str, Any], where: str) -> Param:
        rules = raw.get("validate", [])
        node = raw.get("node", {})
        if "node_name" in raw and "name" in node:
            raise self.fail(where, "give node_name or node.name, not both")
        param = Param(
            name=raw["name"],
            node_name=node.get("name", raw.get("node_name", camel(raw["name"]))),
            kind=raw.get("kind", "positional"),
            type=self._type(raw["type"], f"{where}.type"),
            has_default="default" in raw,
            default=raw.get("default"),
            engine_default=bool(raw.get("engine_default", False)),
            engine_default_doc=(
                raw["engine_default"]
                if isinstance(raw.get("engine_default"), str)
                else None
            ),
            rules=[rules] if isinstance(rules, str) else list(rules),
            doc=raw.get("doc", ""),
            node_doc=node.get("doc"),
            node_has_default=("default" in node) if node else None,
            node_default=node.get("default"),
            languages=tuple(raw.get("languages", ("python", "node"))),
        )
        if node and "node" not in param.languages:
            raise self.fail(
                f"{where}.node", "a parameter Node does not have takes no node: key"
            )
        if not param.kind == "keyword" and len(param.languages) < 2:
            raise self.fail(
                f"{where}.languages",
                "only keyword parameters may be missing from a language",
            )
        if node and "default" in node and "default" not in raw:
            raise self.fail(
                f"{where}.node.default",
                "a Node default needs a default in every language (set `default`)",
            )
        if param.engine_default:
            if param.engine_default_doc is not None and param.has_default:
                raise self.fail(
                    where,
                    "a computed engine_default (text) takes no `default`",
                )
            if param.engine_default_doc is None and param.default is None:
                raise self.fail(
                    where,
                    "engine_default needs a non-null default (the engine's value)",
                )
            if typeexpr.includes_none(param.type):
                raise self.fail(
                    where, "with engine_default, give the type without None"
                )
        elif (
            param.has_default
            and param.default is None
            and not typeexpr.includes_none(param.type)
        ):
            raise self.fail(
                where,
                f"default null needs a type that admits None (got {raw['type']!r})",
            )
        return param

    def _params(self, raws: list[dict[str, Any]], where: str) -> list[Param]:
        params = [self._param(p, f"{where}.params[{p['name']}]") for p in raws]
        self._unique([p.name for p in params], where, "parameter")
        seen_keyword = seen_default = False
        for p in params:
            at = f"{where}.params[{p.name}]"
            if p.keyword:
                seen_keyword = True
                continue
            if seen_keyword:
                raise self.fail(
                    at, "a positional parameter cannot follow a keyword-only one"
                )
            if p.has_default or p.engine_default:
                seen_default = True
            elif seen_default:
                raise self.fail(
                    at,
                    "a positional parameter without default cannot follow one "
                    "with a default",
                )
        return params

    def _checks(
        self, raws: list[dict[str, Any]], params: list[Param], where: str
    ) -> list[Check]:
        by_name = {p.name: p for p in params}
        checks = []
        for i, raw in enumerate(raws):
            at = f"{where}.checks[{i}]"
            if "mutually_exclusive" in raw:
                check = Check("mutually_exclusive", list(raw["mutually_exclusive"]))
                must_be_optional = check.params
            else:
                ((name, required),) = raw["requires"].items()
                check = Check("requires", [name, required])
                must_be_optional = check.params
            for name in check.params:
                if name not in by_name:
                    raise self.fail(at, f"unknown parameter {name!r}")
            for name in must_be_optional:
                if not by_name[name].optional:
                    raise self.fail(
                        at,
                        f"parameter {name!r} must be optional (admit None) "
                        "to take part in a check",
                    )
            checks.append(check)
        return checks

    def _raises(self, raws: list[Any], where: str) -> list[Raise]:
        explicit: dict[str, str] = {}
        order: list[str] = []
        for i, item in enumerate(raws):
            at = f"{where}.raises[{i}]"
            if isinstance(item, dict):
                codes, when = [item["code"]], item["when"]
            elif item in self.groups:
                codes, when = self.groups[item], ""
            else:
                codes, when = [item], ""
            for code in codes:
                if code not in self.errors_by_code:
                    raise self.fail(at, f"unknown error code or group {code!r}")
                if code not in explicit:
                    order.append(code)
                    explicit[code] = when
                elif when:
                    explicit[code] = when
        return [
            Raise(self.errors_by_code[c], explicit[c] or self.errors_by_code[c].doc)
            for c in order
        ]

    def _method(self, raw: dict[str, Any], where: str, native: bool = False) -> Method:
        params = self._params(raw["params"], where)
        returns_raw = raw.get("returns", {})
        returns = (
            self._type(returns_raw["type"], f"{where}.returns.type")
            if "type" in returns_raw
            else None
        )
        method = Method(
            name=raw["name"],
            node_name=raw.get("node_name", camel(raw["name"])),
            is_async=raw.get("async", False),
            doc=raw.get("doc", ""),
            params=params,
            checks=self._checks(raw.get("checks", []), params, where),
            returns=returns,
            returns_doc=returns_raw.get("doc"),
            raises=self._raises(raw.get("raises", []), where),
            node_doc=raw.get("node", {}).get("doc"),
        )
        if not native:
            for p in params:
                if not p.doc:
                    raise self.fail(f"{where}.params[{p.name}]", "doc is required")
        return method

    def _properties(self, raws: list[dict[str, Any]], where: str) -> list[Property]:
        props = []
        for p in raws:
            at = f"{where}.properties[{p['name']}]"
            prop = Property(
                p["name"],
                p.get("node_name", camel(p["name"])),
                self._type(p["type"], f"{at}.type"),
                p.get("alias_of"),
                p["doc"],
                tuple(p.get("languages", ("python", "node"))),
            )
            if (
                "python" in prop.languages
                and typeexpr.names(prop.type) & typeexpr.NODE_ONLY
            ):
                raise self.fail(
                    f"{at}.type", "a Node-only type needs languages: [node]"
                )
            props.append(prop)
        return props

    def _dataclass(self, raw: dict[str, Any]) -> DataClass:
        where = f"dataclasses[{raw['name']}]"
        fields = []
        seen_default = False
        for f in raw["fields"]:
            at = f"{where}.fields[{f['name']}]"
            fld = Field(
                f["name"],
                f.get("node_name", camel(f["name"])),
                self._type(f["type"], f"{at}.type"),
                "default" in f,
                f.get("default"),
                f.get("repr", True),
                f.get("compare", True),
                f["doc"],
                f.get("node", {}).get("doc"),
            )
            if (
                fld.has_default
                and fld.default is None
                and not typeexpr.includes_none(fld.type)
            ):
                raise self.fail(
                    at,
                    f"default null needs a type that admits None (got {f['type']!r})",
                )
            if fld.has_default:
                seen_default = True
            elif seen_default:
                raise self.fail(
                    at, "a field without default cannot follow one with a default"
                )
            fields.append(fld)
        properties = self._properties(raw.get("properties", []), where)
        field_names = {f.name for f in fields}
        for prop in properties:
            if prop.alias_of is not None and prop.alias_of not in field_names:
                raise self.fail(
                    f"{where}.properties[{prop.name}].alias_of",
                    f"unknown field {prop.alias_of!r}",
                )
        methods = [
            self._method(m, f"{where}.methods[{m['name']}]")
            for m in raw.get("methods", [])
        ]
        factories = []
        for f in raw.get("factories", []):
            factory = self._method(
                {**f, "returns": {"type": raw["name"], **f.get("returns", {})}},
                f"{where}.factories[{f['name']}]",
            )
            factories.append(factory)
        self._unique(
            list(field_names)
            + [p.name for p in properties]
            + [m.name for m in methods]
            + [f.name for f in factories],
            where,
            "member",
        )
        python = raw.get("python", {})
        return DataClass(
            name=raw["name"],
            node_name=raw.get("node_name", raw["name"]),
            frozen=raw["frozen"],
            doc=raw["doc"],
            base=python.get("base"),
            slots=python.get("slots", False),
            fields=fields,
            properties=properties,
            methods=methods,
            factories=factories,
            node_base=raw.get("node", {}).get("base"),
            node_doc=raw.get("node", {}).get("doc"),
        )

    def _class(self, raw: dict[str, Any]) -> ApiClass:
        where = f"classes[{raw['name']}]"
        init_raw = raw["init"]
        init = self._method(
            {
                "name": "__init__",
                "doc": raw["doc"],
                "params": init_raw["params"],
                "checks": init_raw.get("checks", []),
                "raises": init_raw.get("raises", []),
                "returns": {"type": "None"},
            },
            f"{where}.init",
        )
        properties = self._properties(raw.get("properties", []), where)
        for prop in properties:
            if prop.alias_of is not None:
                raise self.fail(
                    f"{where}.properties[{prop.name}].alias_of",
                    "alias_of is for dataclass properties",
                )
        methods = [
            self._method(m, f"{where}.methods[{m['name']}]")
            for m in raw.get("methods", [])
        ]
        self._unique(
            [p.name for p in properties] + [m.name for m in methods], where, "member"
        )
        iterates = (
            self._type(raw["iterates"], f"{where}.iterates")
            if "iterates" in raw
            else None
        )
        return ApiClass(
            name=raw["name"],
            node_name=raw.get("node_name", raw["name"]),
            base=raw["python"]["base"],
            protocols=list(raw.get("protocols", [])),
            iterates=iterates,
            doc=raw["doc"],
            init=init,
            properties=properties,
            methods=methods,
            node_base=raw.get("node", {}).get("base"),
            node_doc=raw.get("node", {}).get("doc"),
        )
