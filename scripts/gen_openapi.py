"""Write the OpenAPI description of bread's HTTP/JSON API from the descriptor set.

    python scripts/gen_openapi.py build/bread.pb build/openapi.json     (run by `make proto`)

The edge's grpc_json_transcoder serves every RPC that has a google.api.http annotation at that
path, from the same descriptor set; this describes them as it maps them (proto3 JSON): fields
by their lowerCamelCase JSON names, 64-bit integers as strings, enums by name, Timestamps as
RFC 3339 strings; path variables from the path, the other fields of a bodiless request from
the query string, those of a `body: "*"` request from the JSON body. Errors are the
transcoder's and the edge's one JSON shape, {"code", "message", "details"}. No generator from
PyPI or npm works here without fetching binaries, so this one stays small: an annotation or a
type it does not know stops it, rather than being described wrongly.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

FieldProto = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

# RPCs the edge answers without a token (its jwt_authn rules in envoy/envoy.yaml.tmpl);
# tests/e2e/test_openapi.py checks the edge agrees.
PUBLIC_METHODS = frozenset({"bread.order.v1.OrderService.GetMenu"})

SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldProto.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    # proto3 JSON prints 64-bit integers as strings (JavaScript numbers cannot hold them).
    FieldProto.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_FIXED64: {"type": "string", "format": "uint64"},
}
WELL_KNOWN: dict[str, Schema] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}
# What the transcoder (convert_grpc_status) and the edge's local replies answer on an error.
STATUS: Schema = {
    "type": "object",
    "description": "An error: the gRPC status, also as the HTTP status.",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "A google.rpc.Code."},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
PATH_VARIABLE = re.compile(r"\{([^}]*)\}")
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


class Unsupported(ValueError):
    """An annotation or a field this generator cannot describe faithfully."""


class Descriptors:
    """The messages and enums of a descriptor set by full name, and their comments."""

    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        for file in files:
            comments = {
                tuple(location.path): location.leading_comments
                for location in file.source_code_info.location
                if location.leading_comments
            }
            self._index(file, comments)

    def _index(
        self, file: descriptor_pb2.FileDescriptorProto, comments: dict[tuple[int, ...], str]
    ) -> None:
        def note(name: str, path: tuple[int, ...]) -> None:
            if path in comments:
                self.comments[name.lstrip(".")] = " ".join(comments[path].split())

        def walk(
            prefix: str, messages: Sequence[descriptor_pb2.DescriptorProto], path: tuple[int, ...]
        ) -> None:
            for i, message in enumerate(messages):
                name = f"{prefix}.{message.name}"
                self.messages[name] = message
                note(name, (*path, i))
                for j, field in enumerate(message.field):
                    note(f"{name}.{field.name}", (*path, i, 2, j))
                for j, enum in enumerate(message.enum_type):
                    self.enums[f"{name}.{enum.name}"] = enum
                    note(f"{name}.{enum.name}", (*path, i, 4, j))
                walk(name, message.nested_type, (*path, i, 3))

        package = f".{file.package}" if file.package else ""
        walk(package, file.message_type, (4,))
        for i, enum in enumerate(file.enum_type):
            self.enums[f"{package}.{enum.name}"] = enum
            note(f"{package}.{enum.name}", (5, i))
        for i, service in enumerate(file.service):
            note(f"{package}.{service.name}", (6, i))
            for j, method in enumerate(service.method):
                note(f"{package}.{service.name}.{method.name}", (6, i, 2, j))


class Generator:
    def __init__(self, descriptors: Descriptors) -> None:
        self.d = descriptors
        self.components: dict[str, Schema] = {}

    def field_schema(self, owner: str, field: descriptor_pb2.FieldDescriptorProto) -> Schema:
        if (
            field.type_name in self.d.messages
            and self.d.messages[field.type_name].options.map_entry
        ):
            raise Unsupported(f"{owner}.{field.name}: map fields")
        schema = self.single_schema(f"{owner}.{field.name}", field)
        if field.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": schema}
        description = self.d.comments.get(f"{owner}.{field.name}")
        return {**schema, "description": description} if description else schema

    def single_schema(self, where: str, field: descriptor_pb2.FieldDescriptorProto) -> Schema:
        if field.type in SCALARS:
            return dict(SCALARS[field.type])
        if field.type == FieldProto.TYPE_ENUM:
            return self.ref(field.type_name, self.enum_schema)
        if field.type == FieldProto.TYPE_MESSAGE:
            if field.type_name in WELL_KNOWN:
                return dict(WELL_KNOWN[field.type_name])
            if field.type_name.startswith(".google.protobuf."):
                raise Unsupported(f"{where}: {field.type_name} has its own JSON mapping")
            return self.ref(field.type_name, self.message_schema)
        raise Unsupported(f"{where}: field type {field.type}")

    def ref(self, type_name: str, build: Callable[[str], Schema]) -> Schema:
        name = type_name.lstrip(".")
        if name not in self.components:
            self.components[name] = {}  # placeholder: a message may refer to itself
            self.components[name] = build(type_name)
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_schema(self, type_name: str) -> Schema:
        schema: Schema = {
            "type": "string",
            "enum": [value.name for value in self.d.enums[type_name].value],
        }
        return self.described(schema, type_name)

    def message_schema(self, type_name: str, leave_out: frozenset[str] = frozenset()) -> Schema:
        owner = type_name.lstrip(".")
        properties = {
            field.json_name: self.field_schema(owner, field)
            for field in self.d.messages[type_name].field
            if field.name not in leave_out
        }
        return self.described({"type": "object", "properties": properties}, type_name)

    def described(self, schema: Schema, type_name: str) -> Schema:
        description = self.d.comments.get(type_name.lstrip("."))
        return {**schema, "description": description} if description else schema

    def operation(
        self, service: str, method: descriptor_pb2.MethodDescriptorProto, rule: http_pb2.HttpRule
    ) -> tuple[str, str, Schema]:
        """(path, HTTP method, OpenAPI operation) of an annotated RPC."""
        full_name = f"{service}.{method.name}"
        verb = rule.WhichOneof("pattern")
        if verb not in HTTP_METHODS or rule.additional_bindings or rule.response_body:
            raise Unsupported(f"{full_name}: only get/put/post/delete/patch, one binding")
        if rule.body not in ("", "*"):
            raise Unsupported(f'{full_name}: body "{rule.body}" (only "*" or none)')
        path: str = getattr(rule, verb)
        request = self.d.messages[method.input_type]
        fields = {field.name: field for field in request.field}
        bound = PATH_VARIABLE.findall(path)
        for variable in bound:
            if variable not in fields or fields[variable].label == FieldProto.LABEL_REPEATED:
                raise Unsupported(f"{full_name}: path variable {{{variable}}}")
        where = method.input_type.lstrip(".")
        parameters = [
            parameter(name, "path", self.field_schema(where, fields[name])) for name in bound
        ]
        operation: Schema = {
            "operationId": full_name.rsplit(".", 2)[-2] + "_" + method.name,
            "tags": [service.rsplit(".", 1)[-1]],
        }
        if full_name in self.d.comments:
            operation["description"] = self.d.comments[full_name]
        if rule.body == "*":
            body = self.message_schema(method.input_type, leave_out=frozenset(bound))
            if body["properties"]:
                operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
        else:
            for field in request.field:
                if field.name in bound:
                    continue
                if field.type == FieldProto.TYPE_MESSAGE:
                    raise Unsupported(f"{full_name}: message field {field.name} in a query")
                parameters.append(
                    parameter(field.json_name, "query", self.field_schema(where, field))
                )
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {
                        "schema": self.ref(method.output_type, self.message_schema)
                    }
                },
            },
            "default": {
                "description": "An error",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Status"}}
                },
            },
        }
        if full_name in PUBLIC_METHODS:
            operation["security"] = []  # no token needed
        return path, verb, operation


def parameter(name: str, location: str, schema: Schema) -> Schema:
    """A path or query parameter; the field's comment describes the parameter."""
    found: Schema = {"name": name, "in": location}
    if location == "path":
        found["required"] = True
    if "description" in schema:
        schema = dict(schema)
        found["description"] = schema.pop("description")
    return {**found, "schema": schema}


def annotated(
    files: Sequence[descriptor_pb2.FileDescriptorProto],
) -> Iterator[tuple[str, descriptor_pb2.MethodDescriptorProto, http_pb2.HttpRule]]:
    """(service full name, method, its google.api.http rule) of every annotated RPC."""
    for file in files:
        for service in file.service:
            for method in service.method:
                if method.options.HasExtension(annotations_pb2.http):
                    rule = method.options.Extensions[annotations_pb2.http]
                    yield f"{file.package}.{service.name}", method, rule


def document(files: Sequence[descriptor_pb2.FileDescriptorProto]) -> Schema:
    descriptors = Descriptors(files)
    generator = Generator(descriptors)
    paths: dict[str, dict[str, Schema]] = {}
    tags: dict[str, Schema] = {}
    methods: set[str] = set()
    for service, method, rule in annotated(files):
        methods.add(f"{service}.{method.name}")
        path, verb, operation = generator.operation(service, method, rule)
        if verb in paths.setdefault(path, {}):
            raise Unsupported(f"{verb.upper()} {path} is bound twice")
        paths[path][verb] = operation
        name = service.rsplit(".", 1)[-1]
        tags.setdefault(name, {"name": name})
        if service in descriptors.comments:
            tags[name]["description"] = descriptors.comments[service]
    unknown = PUBLIC_METHODS - methods
    if unknown:
        raise Unsupported(f"PUBLIC_METHODS: no such annotated RPC {', '.join(sorted(unknown))}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "bread HTTP/JSON API",
            "version": "v1",
            "description": (
                "Served by the Envoy edge, which transcodes these calls to the gRPC services "
                "(the same API over gRPC: protos/). Generated from the protos' google.api.http "
                "annotations by `make proto`. Every call but those marked otherwise needs "
                "`Authorization: Bearer <JWT>` (401 without a valid one)."
            ),
        },
        "tags": [tags[name] for name in sorted(tags)],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Status": STATUS, **dict(sorted(generator.components.items()))},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: gen_openapi.py DESCRIPTOR_SET OUT", file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    files = descriptor_pb2.FileDescriptorSet.FromString(source.read_bytes()).file
    try:
        doc = document(files)
    except Unsupported as exc:
        print(f"gen_openapi: {exc}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
