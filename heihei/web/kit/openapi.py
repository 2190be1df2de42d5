"""
OpenAPI 3.0 documents built from the declarations (heihei.web.kit.params),
so a document can never disagree with what the routes accept.

Each group of routes brings its surface: the schema of its answers (every
surface answers API-level errors in its own envelope) and what its auth
strategies read. Klein's `<name>` segments become path parameters.
"""

from __future__ import annotations

import re
from typing import Any

from heihei.web.kit.params import Endpoint, Param, condition_values

_SEGMENT = re.compile(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_SECURITY = {
    "api-key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def anchored(pattern: str) -> str:
    """The kit matches a pattern against the whole value (`re.fullmatch`); an OpenAPI pattern matches
    anywhere unless anchored."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return pattern
    return f"^(?:{pattern})$"


def _integer_alternative(p: Param) -> dict[str, Any] | None:
    """The JSON integers a string parameter also takes (the kit reads 42 as "42", then checks it as text:
    a JSON client may send a numeric id as a number), or None when no integer passes its rules."""
    if p.enum:
        return None
    digits = min(p.max_length, 19)

    def fits(text: str) -> bool:
        return p.min_length <= len(text) <= p.max_length and (p.pattern is None or re.fullmatch(p.pattern, text))

    widths = [k for k in range(1, digits + 1) if fits("9" * k)]
    if not widths or widths != list(range(widths[0], widths[-1] + 1)):
        return None  # no integer passes, or not a plain range of widths: the document says string only
    negative = max((k for k in range(1, digits) if fits("-" + "9" * k)), default=0)
    if negative and widths[0] == 1:
        low = -(10 ** negative - 1)
    else:
        low = 0 if widths[0] == 1 and fits("0") else 10 ** (widths[0] - 1)
    return {"type": "integer", "minimum": low, "maximum": min(10 ** widths[-1] - 1, 2 ** 63 - 1)}


def schema_of(p: Param, *, json: bool = False) -> dict[str, Any]:
    """`json`: the parameter comes in a JSON document, where an optional one may be null (absent) and
    a string one may be a number."""
    s = _schema_of(p)
    if json and p.kind == "string" and p.convert is None and (number := _integer_alternative(p)) is not None:
        s = {"anyOf": [s, number]}
    if json and not p.required and p.required_if is None:
        s["nullable"] = True
    return s


def _schema_of(p: Param) -> dict[str, Any]:
    if p.kind == "string":
        s: dict[str, Any] = {"type": "string", "maxLength": p.max_length}
        # an empty value is read as absent (Param.empty_is_absent): a required one must not be empty
        min_length = max(p.min_length, 1 if p.required and p.empty_is_absent and p.where != "path" else 0)
        if min_length:
            s["minLength"] = min_length
        if p.enum:
            s["enum"] = list(p.enum)
        if p.pattern:
            s["pattern"] = anchored(p.pattern)
    elif p.kind in ("long", "int", "number"):
        s = {"type": "number"} if p.kind == "number" else {"type": "integer",
                                                          "format": "int64" if p.kind == "long" else "int32"}
        if p.enum:
            s["enum"] = list(p.enum)
        if p.minimum is not None:
            s["minimum"] = p.minimum
        if p.maximum is not None:
            s["maximum"] = p.maximum
    elif p.kind == "bool":
        s = {"type": "boolean"}
    elif p.kind == "file":
        s = {"type": "string", "format": "binary"}
    elif p.schema is not None:
        s = dict(p.schema)
    elif p.fields:
        s = object_schema(p.fields, open_object=p.open_object)
    else:
        s = {"type": "object", "additionalProperties": True}
    if p.default is not None:
        s["default"] = p.default
    return s


def object_schema(fields: tuple[Param, ...], *, open_object: bool = True) -> dict[str, Any]:
    """A JSON object of declared fields; a field required only when another has a value
    (`required_if`) makes one variant per value of that other field (its enum)."""
    schema: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": open_object}
    for f in fields:
        schema["properties"][f.name] = {**schema_of(f, json=True),
                                        **({"description": _describe(f)} if _describe(f) else {})}
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    schema.update(_conditions(fields))
    return schema


def _conditions(fields: tuple[Param, ...]) -> dict[str, Any]:
    """A field required only when another has a value (`required_if`): one variant per value of that
    other field (its enum), or, without an enum, "one of those values and the field, or any other value
    (or none)". An absent switch makes no field required."""
    switches = sorted({f.required_if[0] for f in fields if f.required_if is not None})
    groups = []
    for other in switches:
        conditional = [f for f in fields if f.required_if is not None and f.required_if[0] == other]
        values = next((f.enum for f in fields if f.name == other), ())
        if values:
            groups.append([{"properties": {other: {"enum": [value]}},
                            **({"required": names} if (names := [f.name for f in conditional
                                                                  if str(value) in condition_values(f)]) else {})}
                           for value in values])
        else:
            variants = []
            for f in conditional:
                variants.append({"properties": {other: {"enum": list(condition_values(f))}}, "required": [f.name]})
                variants.append({"not": {"properties": {other: {"enum": list(condition_values(f))}},
                                         "required": [other]}})
            groups.append(variants)
    if not groups:
        return {}
    if len(groups) == 1:
        return {"anyOf": groups[0]}
    return {"allOf": [{"anyOf": g} for g in groups]}


def _describe(p: Param) -> str:
    text = p.description
    if p.required_if is not None:
        text = (text + " " if text else "") + \
            f"(required when {p.required_if[0]} is {' or '.join(condition_values(p))})"
    if p.aliases:
        text = (text + " " if text else "") + "(also accepted as " + ", ".join(p.aliases) + ")"
    return text


def _parameter(p: Param, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "in": where, "required": True if where == "path" else p.required}
    if p.kind == "json":
        out["content"] = {"application/json": {"schema": schema_of(p)}}
    else:
        out["schema"] = schema_of(p)
    if where == "query" and not p.required and p.empty_is_absent:
        out["allowEmptyValue"] = True  # an empty value is read as absent
    if _describe(p):
        out["description"] = _describe(p)
    return out


def _body_schema(params: tuple[Param, ...], *, json: bool) -> dict[str, Any]:
    props = {}
    for p in params:
        s = schema_of(p, json=json)
        if _describe(p):
            s = {**s, "description": _describe(p)}
        props[p.name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    schema.update(_conditions(params))
    return schema


def operations(ep: Endpoint, *, envelope: str, auth_params: dict[str, tuple[Param, ...]],
               error_text: dict[int, str], body: tuple[str, ...]) -> dict[str, Any]:
    """The path item of one endpoint: an operation per method."""
    segments = set(_SEGMENT.findall(ep.path))
    params = ep.all_params(auth_params)
    declared = {p.name for p in params}
    params += tuple(Param(name, where="path") for name in sorted(segments - declared))
    in_path = [p for p in params if p.name in segments]
    whole_body = next((p for p in params if p.where == "body"), None)
    rest = tuple(p for p in params if p.name not in segments and p.where != "body")
    codes = sorted(set(ep.errors))
    description = ""
    if codes:
        description = "Error codes: " + ", ".join(f"{c} {error_text.get(c, '')}".strip() for c in codes) + "."
    if ep.returns:
        description += (" " if description else "") + "Answer fields: " + ", ".join(ep.returns) + "."
    ref = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{envelope}"}}}}
    responses = {"200": {"description": "the answer (API-level errors too, in the surface's envelope)", **ref},
                 "default": {"description": "routing errors, an unavailable back end (503), a bug (500)", **ref}}
    operation_id = re.sub(r"[^A-Za-z0-9]+", "_", ep.path.strip("/"))
    common: dict[str, Any] = {"summary": ep.summary, "responses": responses}
    if description:
        common["description"] = description
    if ep.tag:
        common["tags"] = [ep.tag]
    if ep.deprecated:
        common["deprecated"] = True
    if ep.auth in _SECURITY:
        common["security"] = [{ep.auth: []}]
    item: dict[str, Any] = {}
    for method in ep.methods:
        op = {**common, "operationId": f"{operation_id}_{method.lower()}"}
        path_params = [_parameter(p, "path") for p in in_path]
        if whole_body is not None:
            op["parameters"] = path_params + [_parameter(p, "query") for p in rest if p.kind != "file"]
            op["requestBody"] = {"required": whole_body.required, "content": {"application/json": {
                "schema": {**schema_of(whole_body),
                           **({"description": _describe(whole_body)} if _describe(whole_body) else {})}}}}
        elif method in ("GET", "DELETE", "HEAD") or not rest:
            op["parameters"] = path_params + [_parameter(p, "query") for p in rest if p.kind != "file"]
        else:
            if path_params:
                op["parameters"] = path_params
            content = {}
            # an object parameter in a form is a field of JSON text, which OpenAPI 3.0 clients do not
            # serialize (they flatten the object into fields): such an operation documents its JSON body
            # only, and its description says that the form works too
            objects_in_form = "json" in body and any(p.kind == "json" for p in rest)
            if "form" in body and not objects_in_form:
                kind = "multipart/form-data" if any(p.kind == "file" for p in rest) \
                    else "application/x-www-form-urlencoded"
                content[kind] = {"schema": _body_schema(rest, json=False)}
            elif "form" in body:
                op["description"] = (op.get("description", "") + " A form body works too, each object "
                                     "parameter a field of JSON text.").strip()
            if "json" in body and not any(p.kind == "file" for p in rest):  # files come in multipart only
                content["application/json"] = {"schema": _body_schema(rest, json=True)}
            op["requestBody"] = {"required": any(p.required for p in rest), "content": content}
        item[method.lower()] = op
    return item


def document(groups: list[dict[str, Any]], *, title: str, server_url: str, version: str,
             description: str = "") -> dict[str, Any]:
    """`groups`: dicts with `endpoints`, `envelope` (a schema name), `schema` (its JSON schema),
    `auth_params` (strategy -> params), `error_text` (code -> text) and `body` ("form", "json")."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    used_security = set()
    for group in groups:
        schemas[group["envelope"]] = group["schema"]
        for ep in sorted(group["endpoints"], key=lambda e: e.path):
            path = _SEGMENT.sub(r"{\1}", ep.path)
            paths.setdefault(path, {}).update(operations(
                ep, envelope=group["envelope"], auth_params=group.get("auth_params", {}),
                error_text=group.get("error_text", {}), body=group.get("body", ("form", "json"))))
            if ep.auth in _SECURITY:
                used_security.add(ep.auth)
    components: dict[str, Any] = {"schemas": schemas}
    if used_security:
        components["securitySchemes"] = {name: _SECURITY[name] for name in sorted(used_security)}
    return {"openapi": "3.0.3",
            "info": {"title": title, "version": version, **({"description": description} if description else {})},
            "servers": [{"url": server_url}], "paths": paths, "components": components}


def group(routes, *, envelope: str, auth_params: dict[str, tuple[Param, ...]] | None = None,
          error_text: dict[int, str] | None = None, body: tuple[str, ...] = ("form", "json")) -> dict[str, Any]:
    """One group of routes (a `Routes` class) as `document` takes it."""
    return {"endpoints": routes.endpoints(), "envelope": envelope, "schema": routes.surface.envelope_schema,
            "auth_params": auth_params or {}, "error_text": error_text or {}, "body": body}
