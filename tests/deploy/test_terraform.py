"""Static checks of the Terraform in `terraform/` (no AWS account or provider download needed).

- Every `.tf` file parses (python-hcl2).
- Each service has its module in the root module: `module "event_source"`, and for the consumer
  services one `module "consumer"` over `local.consumers`, whose arguments for a service are
  resolved the way Terraform does (what every consumer gets merged with the service's entry,
  see `consumer_arguments`). Each service's `environment` and `secrets` agree with the code
  (`code_facts`): every variable a
  deployment must set is set, nothing unknown to the code is set (the AWS SDK's `AWS_*`,
  OpenTelemetry's `OTEL_*` and `RUST_LOG` aside), secrets come from `secrets`, and every table
  and stream variable names the table or stream whose name is the code's default (with an empty
  `name_prefix`; the prefix is prepended otherwise).
- Each task role grants exactly what the service's code can call (`code_facts.aws_calls`), on
  the resource the service's variable names: table actions on the table, `Query` on the table's
  indexes when it has some (and only there when the code queries the indexes only,
  `code_facts.index_only_calls`), and for the read model's blue/green tables
  (`<READ_MODEL_TABLE>-<suffix>`, `code_facts.SUFFIXED_TABLES`) what the code calls on them
  (`code_facts.suffixed_calls`) on `<arn>-*` and `<arn>-*/index/*`; stream and fan-out consumer actions, bucket and object actions (the
  objects under the prefix the service writes to, the bucket's KMS key through S3), SES and SNS.
  Only the consumers that handle events get the event store, the relay and the dead letters
  (`event_handler`); a record service (the archiver) gets none of them. A variable naming
  several tables (`code_facts.TABLE_LIST_VARIABLES`: event-source's OPS_APPLICATIONS, the lease
  table of each consumer application its operations view watches) gets one grant per table,
  keyed `VARIABLE[<entry>]`, each with what the code calls on them; OPS_APPLICATIONS names
  exactly the consumer services deployed, in pipeline order, each with its own lease table.
  Actions the code calls on a table itself only (`code_facts.table_only_calls`) are not granted
  on its indexes.
- The environment, names and grants are checked as deployed by default and with
  `consumer_initial_position = "ARCHIVE"` (catch-up from the archive): then the consumer services
  that catch up (`code_facts.catches_up`) also get the archive's bucket and manifest by name and
  what reading them takes (`code_facts.catch_up_calls`: Query on the manifest, GetObject on the
  segments under the archiver's prefix, the bucket's key through S3), and the archiver keeps its
  own position; without it nothing of that.
- Consumer services never scale past the stream's shards, and every service gets a stop
  timeout long enough to drain (60–120 s).
- The tables have the keys, indexes and TTL of the code's create functions.
- Every checkov skip is written inline with a reason.
- When the `terraform` CLI is installed: `terraform fmt -check`, and with a local provider
  mirror also `terraform validate` and `terraform test` (mocked provider), root and modules.

Expressions are evaluated by a small evaluator that follows references across modules
(`module.x.name` → the module's output → its resource → the variable given by the caller), so a
name is checked where it is really built.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
import pytest
import yaml

import code_facts

ROOT = code_facts.ROOT
TERRAFORM = ROOT / "terraform"
WORKFLOW = ROOT / ".github" / "workflows" / "terraform.yml"
TFLINT_CONFIG = ROOT / ".tflint.hcl"

#: The root module block of event-source.
EVENT_SOURCE_MODULE = "event_source"
#: The root module block of the consumer services (`for_each = local.consumers`, keyed by service).
CONSUMER_MODULE = "consumer"
#: The module each service is deployed with.
SOURCE_OF = {
    service: "./modules/fargate-service" if service == "event-source" else "./modules/consumer-service"
    for service in code_facts.SERVICES
}

RESOURCE_VARIABLES = list(code_facts.RESOURCE_VARIABLES)
TABLE_VARIABLES = [v for v in RESOURCE_VARIABLES if v.endswith("_TABLE")]

#: Actions on a table that DynamoDB authorises on an index ARN (`<table>/index/<name>`).
INDEX_ACTIONS = {"dynamodb:Query", "dynamodb:Scan"}

#: S3 actions authorised on the bucket ARN (the others our code calls are on object ARNs).
BUCKET_LEVEL_ACTIONS = {"s3:ListBucket"}

#: Variables holding credentials: they must come from `secrets`, never from `environment`.
SECRET_VARIABLES = re.compile(r"(SECRET|TOKEN|PASSWORD|PRIVATE_KEY)")

#: Statements every task role has besides the service's own grants: the collector sidecar
#: (traces to X-Ray, EMF metrics to one log group) and the platform key through DynamoDB and
#: Kinesis.
PLATFORM_ACTIONS = {
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "xray:GetSamplingRules",
    "xray:GetSamplingStatisticSummaries",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
    "logs:CreateLogStream",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
}


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def tf_files() -> list[Path]:
    return sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)


@functools.cache
def parse(path: Path) -> dict:
    with open(path) as f:
        return hcl2.load(f)


def unquote(text: str) -> str:
    """A label or key as written (python-hcl2 keeps the quotes of quoted ones)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def clean(value):
    """A parsed value without python-hcl2's bookkeeping keys, with unquoted keys."""
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


@dataclass
class Module:
    """The blocks of one module directory (its `.tf` files merged)."""

    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, object] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)


@functools.cache
def load_module(path: Path) -> Module:
    module = Module(path)
    for file in sorted(path.glob("*.tf")):
        document = parse(file)
        for block in document.get("variable", []):
            for name, body in block.items():
                module.variables[unquote(name)] = clean(body)
        for block in document.get("locals", []):
            for name, value in clean(block).items():
                module.locals[name] = value
        for block in document.get("module", []):
            for name, body in block.items():
                module.modules[unquote(name)] = clean(body)
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in document.get(kind, []):
                for rtype, named in block.items():
                    for rname, body in named.items():
                        target[(unquote(rtype), unquote(rname))] = clean(body)
        for block in document.get("output", []):
            for name, body in block.items():
                module.outputs[unquote(name)] = clean(body)
    return module


def root() -> Module:
    return load_module(TERRAFORM)


def service_block(service: str, variables: dict | None = None) -> dict:
    """The arguments of the module deploying `service`, as expressions of the root module, with
    the root module's `variables` (name → value; the others keep their defaults) where the
    arguments depend on them."""
    if service == "event-source":
        block = root().modules.get(EVENT_SOURCE_MODULE)
        assert block is not None, f'terraform/ has no module "{EVENT_SOURCE_MODULE}" for {service}'
        return event_source_arguments(block)
    return consumer_arguments(service, variables)


def event_source_arguments(block: dict) -> dict:
    """event-source's arguments with `dynamodb_tables` resolved when it is a `merge()` of maps
    and `{ for x in local.<list> : "<key>" => { … } }` expressions (`_for_map`)."""
    tables = block.get("dynamodb_tables")
    call = _call(tables)
    if call is None:
        return block
    function, arguments = call
    assert function == "merge", f"module.{EVENT_SOURCE_MODULE}: dynamodb_tables is a {function}(), not a merge()"
    merged: dict = {}
    for argument in arguments:
        value = argument if isinstance(argument, dict) else _for_map(argument)
        if value is None:
            raise Unresolvable(f"module.{EVENT_SOURCE_MODULE}: cannot resolve {argument} in dynamodb_tables")
        overlap = sorted(set(merged) & set(value))
        assert not overlap, f"module.{EVENT_SOURCE_MODULE}: dynamodb_tables restates {overlap}"
        merged.update(value)
    return dict(block, dynamodb_tables=merged)


# ---------------------------------------------------------------------------------------------
# For expressions over a local list
# ---------------------------------------------------------------------------------------------

#: `[for x in local.<list> : x if contains(keys(local.<map>), x)]`: the entries of a list that are
#: keys of a map, in the list's order.
_LIST_IN_MAP = re.compile(r"\$\{\[for (\w+) in local\.(\w+) : \1 if contains\(keys\(local\.(\w+)\), \1\)\]\}")

#: `{ for x in local.<list> : "<key template>" => <value> }` (python-hcl2 doubles the braces).
_FOR_MAP = re.compile(r'\$\{\{for (\w+) in local\.(\w+) : ("[^"]*") => (.*)\}\}', re.S)

#: `join("<separator>", [for x in local.<list> : "<template>"])`.
_JOIN_FOR = re.compile(r'\$\{join\("([^"]*)", \[for (\w+) in local\.(\w+) : ("[^"]*")\]\)\}', re.S)


def local_list(name: str) -> list[str]:
    """The strings of `local.<name>` in the root module: a list of literals, or a list filtered by
    a map's keys (`_LIST_IN_MAP`)."""
    raw = _local(name)
    if isinstance(raw, list):
        return [unquote(item) for item in raw]
    match = _LIST_IN_MAP.fullmatch(str(raw))
    if match is None:
        raise Unresolvable(f"local.{name} is not a list the checks evaluate: {raw}")
    keys = root().locals[match.group(3)]
    return [item for item in local_list(match.group(2)) if item in keys]


def _substitute(text: str, variable: str, item: str) -> str:
    """`text` with the for expression's `variable` bound to `item`: `${x}` in templates, `[x]` in
    references."""
    text = text.replace(f"${{{variable}}}", item)
    return re.sub(rf"\[{variable}\]", f'["{item}"]', text)


def _for_map(raw) -> dict | None:
    """`{ for x in local.<list> : "<key>" => <value> }` as a map of raw expressions, or None."""
    match = _FOR_MAP.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        return None
    variable, source, key, value = match.groups()
    return {
        unquote(_substitute(key, variable, item)): clean(hcl2.loads(f"value = {_substitute(value, variable, item)}")["value"])
        for item in local_list(source)
    }


def joined_for(raw, ev: "Evaluator") -> str:
    """The value of `join("<sep>", [for x in local.<list> : "<template>"])`, evaluated with `ev`."""
    match = _JOIN_FOR.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise Unresolvable(f"not a join() of a for expression over a local list: {raw}")
    separator, variable, source, template = match.groups()
    return separator.join(str(ev.value(_substitute(template, variable, item))) for item in local_list(source))


def list_variable_tables(variable: str, environment: dict, ev: "Evaluator") -> dict[str, str]:
    """Entry → table, for a variable naming several tables (`code_facts.TABLE_LIST_VARIABLES`),
    as the deployment sets it (the code's default when it does not)."""
    assert variable in code_facts.TABLE_LIST_VARIABLES, variable
    if variable not in environment:
        return code_facts.ops_applications()
    return code_facts.ops_applications(joined_for(environment[variable], ev))


def grant_key(key: str) -> tuple[str, str | None]:
    """A `dynamodb_tables` key: the variable naming the table, and for a variable naming several
    (`VARIABLE[<entry>]`) the entry."""
    match = re.fullmatch(r"([A-Z0-9_]+)(?:\[([^\]]+)\])?", key)
    assert match, f"dynamodb_tables key {key!r} is neither VARIABLE nor VARIABLE[<entry>]"
    return match.group(1), match.group(2)


#: `consumer_initial_position` values the service checks are run with: the default (null) and
#: catch-up from the archive.
INITIAL_POSITIONS = [None, "ARCHIVE"]


def deployed_with(initial_position: str | None) -> dict:
    """The root module's variables of a deployment with `consumer_initial_position`."""
    return {} if initial_position is None else {"consumer_initial_position": initial_position}


class _NotInEntry(Exception):
    """`each.value.<attribute>` of an entry without that attribute (an error but under `try`)."""


_CALL = re.compile(r"\$\{(merge|try|concat)\((.*)\)\}", re.S)

#: One term of a condition: `each.value.<flag>`, `local.<name>` (a condition itself) or
#: `var.<name> == "<literal>"` (or `!=`), optionally negated with `!`.
_TERM = r'!?(?:each\.value|local|var)\.\w+(?:\s*[!=]=\s*"[^"]*")?'

#: A condition: terms joined with `&&`.
_CONDITION = rf"{_TERM}(?:\s*&&\s*{_TERM})*"

#: `{ for k, v in local.<path> : k => v if <condition> }`: the local's entries if the condition
#: holds for the service's entry, else none (python-hcl2 writes it with doubled braces).
_FILTERED_LOCAL = re.compile(
    rf"\$\{{\{{?\s*for (\w+), (\w+) in local\.([\w.]+)\s*:\s*\1 => \2 if ({_CONDITION})\s*\}}?\}}"
)

#: `<condition> ? <a> : <b>`, each of `a` and `b` a `local.<path>`, `var.<name>`, `null`, `[]`
#: or `{}`.
_CONDITIONAL = re.compile(rf"\$\{{({_CONDITION}) \? (.+) : (.+)\}}")


def _local(path: str):
    """The raw value of `local.<path>` in the root module."""
    value = root().locals
    for step in path.split("."):
        value = value[step]
    return value


def _branch(text: str):
    """One result of a conditional: `local.<path>` (its raw value), `var.<name>` (as an
    expression), `null`, `[]` or `{}`."""
    text = text.strip()
    if text in ("[]", "{}"):
        return [] if text == "[]" else {}
    if text == "null":
        return None
    if re.fullmatch(r"var\.\w+", text):
        return f"${{{text}}}"
    match = re.fullmatch(r"local\.([\w.]+)", text)
    if match is None:
        raise Unresolvable(f"module.{CONSUMER_MODULE}: cannot resolve the conditional result {text}")
    return _local(match.group(1))


def _condition(text: str, service: str, entry: dict, variables: dict) -> bool:
    """Whether a condition (`_CONDITION`) holds for the service's entry in `local.consumers`
    and the root module's `variables` (the others at their defaults)."""
    holds = True
    for term in re.split(r"\s*&&\s*", text.strip()):
        negated = term.startswith("!")
        match = re.fullmatch(r'(each\.value|local|var)\.(\w+)(?:\s*([!=]=)\s*"([^"]*)")?', term.lstrip("!"))
        if match is None:
            raise Unresolvable(f"module.{CONSUMER_MODULE}: cannot evaluate the condition {term}")
        kind, name, operator, literal = match.groups()
        if kind == "each.value":
            value = entry.get(name)
            if operator is None:
                assert isinstance(value, bool), f"local.consumers[{service!r}].{name} must be true or false"
        elif kind == "var":
            value = evaluator(variables=variables).variable(name)
        else:
            inner = re.fullmatch(r"\$\{(.*)\}", str(_local(name)), re.S)
            if inner is None or not re.fullmatch(_CONDITION, inner.group(1).strip()):
                raise Unresolvable(f"local.{name} is not a condition the checks evaluate")
            value = _condition(inner.group(1), service, entry, variables)
        if operator is not None:
            value = (value == literal) if operator == "==" else (value != literal)
        elif kind != "each.value" and not isinstance(value, bool):
            raise Unresolvable(f"{kind}.{name} is not true or false")
        holds = holds and (not value if negated else value)
    return holds


def _call(raw) -> tuple[str, list] | None:
    """`merge(…)`, `try(…)` or `concat(…)` as written in an argument: the function and its parsed
    arguments."""
    match = _CALL.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        return None
    return match.group(1), clean(hcl2.loads(f"arguments = [{match.group(2)}]")["arguments"])


def _resolve(raw, service: str, entry: dict, variables: dict | None = None):
    """One argument of `module "consumer"` for one service, as Terraform computes it: `each.key`
    is the service, `each.value` its entry in `local.consumers`; `merge(a, b)` is `a` with `b`'s
    keys added (or overriding), `try(each.value.x, default)` is the entry's `x` if it has one,
    `concat(a, b)` is `a` then `b`; `{ for k, v in local.x : k => v if <condition> }` and
    `<condition> ? local.x : []` are `local.x` if the condition holds, a condition being
    `each.value.f`, `local.c` or `var.v == "…"` terms joined with `&&` (`_condition`, with the
    root module's `variables`)."""
    variables = variables or {}
    if isinstance(raw, dict):
        return {k: _resolve(v, service, entry, variables) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_resolve(v, service, entry, variables) for v in raw]
    if not isinstance(raw, str):
        return raw
    if raw == "${each.key}":
        return f'"{service}"'
    raw = raw.replace("[each.key]", f'["{service}"]')
    match = re.fullmatch(r"\$\{each\.value\.([a-z0-9_]+)\}", raw)
    if match:
        if match.group(1) not in entry:
            raise _NotInEntry(f"local.consumers[{service!r}] has no {match.group(1)}")
        return entry[match.group(1)]
    for pattern, condition_group in ((_FILTERED_LOCAL, 4), (_CONDITIONAL, 1)):
        match = pattern.fullmatch(raw)
        if match is None:
            continue
        holds = _condition(match.group(condition_group), service, entry, variables)
        if pattern is _FILTERED_LOCAL:
            return _resolve(_local(match.group(3)), service, entry, variables) if holds else {}
        return _resolve(_branch(match.group(2) if holds else match.group(3)), service, entry, variables)
    call = _call(raw)
    if call is None:
        if "each." in raw:
            raise Unresolvable(f"module.{CONSUMER_MODULE}: cannot resolve {raw} (add it to _resolve)")
        return raw
    function, arguments = call
    if function == "try":
        first, default = arguments
        try:
            return _resolve(first, service, entry, variables)
        except _NotInEntry:
            return _resolve(default, service, entry, variables)
    if function == "concat":
        joined = []
        for argument in arguments:
            value = _resolve(argument, service, entry, variables)
            assert isinstance(value, list), f"module.{CONSUMER_MODULE}: concat() of {argument!r}"
            joined.extend(value)
        return joined
    merged = {}
    for argument in arguments:
        value = _resolve(argument, service, entry, variables)
        assert isinstance(value, dict), f"module.{CONSUMER_MODULE}: merge() of {argument!r}"
        merged.update(value)
    return merged


def consumer_arguments(service: str, variables: dict | None = None) -> dict:
    """The arguments `module "consumer"` gives the consumer service `service` (with the root
    module's `variables`, the others at their defaults). Null values of `environment` and
    `secrets` are left out, as the module leaves them out of the container."""
    block = root().modules.get(CONSUMER_MODULE)
    assert block is not None, f'terraform/ has no module "{CONSUMER_MODULE}" for the consumer services'
    assert block.get("for_each") == "${local.consumers}", f"module.{CONSUMER_MODULE} is not over local.consumers"
    entries = root().locals.get("consumers", {})
    assert service in entries, f"local.consumers has no entry for {service}"
    arguments = {name: raw for name, raw in block.items() if name != "for_each"}
    resolved = _resolve(arguments, service, entries[service], variables)
    for name in ("environment", "secrets"):
        if isinstance(resolved.get(name), dict):
            resolved[name] = {k: v for k, v in resolved[name].items() if v is not None}
    return resolved


# ---------------------------------------------------------------------------------------------
# Evaluating expressions
# ---------------------------------------------------------------------------------------------


class Unresolvable(Exception):
    """An expression the evaluator does not follow (a function call, a conditional, …)."""


@dataclass(frozen=True)
class Arn:
    """The ARN of a resource, known by its type and name."""

    type: str
    name: str


_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
_REFERENCE = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+|\[(?:\"[^\"]*\"|\d+)\])*$")
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\"[^\"]*\"|\d+)\]")


def _steps(reference: str) -> list[str | int]:
    head = re.match(r"[a-z_][a-z0-9_]*", reference).group(0)
    steps: list[str | int] = [head]
    for attribute, index in _STEP.findall(reference[len(head):]):
        if attribute:
            steps.append(attribute)
        elif index.startswith('"'):
            steps.append(index[1:-1])
        else:
            steps.append(int(index))
    return steps


def _walk(value, steps: list[str | int], what: str):
    for step in steps:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError) as err:
            raise Unresolvable(f"{what}: no {step!r}") from err
    return value


class Evaluator:
    """Evaluates expressions of one module instance: `var.*` come from the caller's arguments
    (or the variable's default), `each.*` from the instance's `for_each` entry."""

    def __init__(self, module: Module, prefix: str = "", arguments: dict | None = None,
                 caller: "Evaluator | None" = None, each: dict | None = None,
                 variables: dict | None = None):
        self.module = module
        self.prefix = prefix
        self.arguments = arguments
        self.caller = caller
        self.each = each or {}
        #: Values of the root module's variables (the root evaluator only).
        self.variables = variables or {}

    # A parsed value: literal strings still carry their quotes, expressions are `${…}`.
    def value(self, raw):
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if not isinstance(raw, str):
            return raw
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            template = raw[1:-1]
            parts = _INTERPOLATION.split(template)
            if len(parts) == 3 and parts[0] == parts[2] == "":
                return self.reference(parts[1])
            out = []
            for i, part in enumerate(parts):
                if i % 2 == 0:
                    out.append(part)
                else:
                    resolved = self.reference(part)
                    if isinstance(resolved, Arn) or isinstance(resolved, (dict, list)):
                        raise Unresolvable(f"cannot interpolate {part} into a string")
                    out.append(str(resolved))
            return "".join(out)
        match = re.fullmatch(r"\$\{(.*)\}", raw, re.S)
        if match:
            return self.reference(match.group(1))
        return raw

    def reference(self, expression: str):
        expression = expression.strip()
        if expression in ("null",):
            return None
        if not _REFERENCE.match(expression):
            raise Unresolvable(f"not a plain reference: {expression}")
        steps = _steps(expression)
        head = steps[0]
        if head == "var":
            return _walk(self.variable(steps[1]), steps[2:], expression)
        if head == "local":
            if steps[1] not in self.module.locals:
                raise Unresolvable(f"no local {steps[1]} in {self.module.path}")
            return self.value(_walk(self.module.locals[steps[1]], steps[2:], expression))
        if head == "each":
            if steps[1] not in self.each:
                raise Unresolvable(f"each.{steps[1]} outside a for_each: {expression}")
            return _walk(self.each[steps[1]], steps[2:], expression)
        if head == "module":
            return self.module_output(steps[1:], expression)
        if head == "data":
            raise Unresolvable(f"data sources are not evaluated: {expression}")
        if head.startswith("aws_"):
            return self.resource_attribute(head, steps[1:], expression)
        raise Unresolvable(f"unknown reference: {expression}")

    def variable(self, name: str):
        if name == "name_prefix" and self.caller is None:
            return self.prefix
        if self.caller is None and name in self.variables:
            return self.variables[name]
        if self.arguments is not None and name in self.arguments:
            return self.caller.value(self.arguments[name])
        declared = self.module.variables.get(name)
        if declared is None:
            raise Unresolvable(f"no variable {name} in {self.module.path}")
        if "default" not in declared:
            raise Unresolvable(f"variable {name} of {self.module.path} has no default")
        return self.value(declared["default"])

    def child(self, name: str, key: str | None) -> "Evaluator":
        block = self.module.modules.get(name)
        if block is None:
            raise Unresolvable(f"no module {name} in {self.module.path}")
        each = {}
        if "for_each" in block:
            entries = self.value(block["for_each"])
            if isinstance(entries, list):
                entries = {e: e for e in entries}
            if key is None or key not in entries:
                raise Unresolvable(f"module.{name} needs one of the keys {sorted(entries)}")
            each = {"key": key, "value": entries[key]}
        source = unquote(block["source"])
        child_module = load_module((self.module.path / source).resolve())
        caller = Evaluator(self.module, self.prefix, self.arguments, self.caller, each, self.variables)
        return Evaluator(child_module, self.prefix, block, caller)

    def module_output(self, steps: list, expression: str):
        name = steps[0]
        rest = steps[1:]
        key = None
        if rest and isinstance(rest[0], (str, int)) and name in self.module.modules and "for_each" in self.module.modules[name]:
            key, rest = rest[0], rest[1:]
        child = self.child(name, key)
        if not rest:
            raise Unresolvable(f"a whole module is not a value: {expression}")
        output = child.module.outputs.get(rest[0])
        if output is None:
            raise Unresolvable(f"module {name} has no output {rest[0]}")
        return _walk(child.value(output["value"]), rest[1:], expression)

    def resource_attribute(self, rtype: str, steps: list, expression: str):
        name, attribute = steps[0], steps[1] if len(steps) > 1 else None
        body = self.module.resources.get((rtype, name))
        if body is None:
            raise Unresolvable(f"no resource {rtype}.{name} in {self.module.path}")
        if attribute in body:
            return self.value(body[attribute])
        if attribute == "arn" and "name" in body:
            return Arn(rtype, self.value(body["name"]))
        raise Unresolvable(f"{expression}: attribute not known before apply")


def evaluator(prefix: str = "", variables: dict | None = None) -> Evaluator:
    return Evaluator(root(), prefix, variables=variables)


def table_indexes(prefix: str = "") -> dict[str, list[str]]:
    """Table name → its global secondary indexes, for the tables of the root module."""
    ev = evaluator(prefix)
    tables = {}
    for name, block in root().modules.items():
        if unquote(block["source"]) != "./modules/dynamodb-table":
            continue
        keys = [None]
        if "for_each" in block:
            keys = list(ev.value(block["for_each"]))
        for key in keys:
            child = ev.child(name, key)
            table = child.variable("name")
            indexes = child.variable("global_secondary_indexes") if "global_secondary_indexes" in block else []
            tables[table] = [index["name"] for index in indexes]
    return tables


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_every_tf_file_parses():
    files = tf_files()
    assert len(files) >= 10, "terraform/ should hold the root module and its modules"
    for path in files:
        parse(path)


def test_modules_follow_the_standard_layout():
    for module in [TERRAFORM, *sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())]:
        for name in ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]:
            assert (module / name).exists(), f"{module.relative_to(ROOT)} has no {name}"
        loaded = load_module(module)
        for variable, body in loaded.variables.items():
            assert "type" in body, f"{module.relative_to(ROOT)}: variable {variable} has no type"
            assert unquote(str(body.get("description", ""))).strip(), (
                f"{module.relative_to(ROOT)}: variable {variable} has no description"
            )
        for output, body in loaded.outputs.items():
            assert unquote(str(body.get("description", ""))).strip(), (
                f"{module.relative_to(ROOT)}: output {output} has no description"
            )
        readme = (module / "README.md").read_text()
        missing = [v for v in loaded.variables if f"`{v}`" not in readme]
        assert not missing, f"{module.relative_to(ROOT)}/README.md does not list the inputs {missing}"


def test_checkov_skips_are_justified():
    skips = 0
    for path in tf_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            skips += 1
            match = re.match(r"\s*#checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)$", line)
            where = f"{path.relative_to(ROOT)}:{number}"
            assert match, f"{where}: write skips as `#checkov:skip=CKV_…:<reason>`"
            assert len(match.group(2).strip()) >= 40, f"{where}: the reason of {match.group(1)} is too short"
    assert skips < 20, "more than 20 checkov skips: fix the findings instead"


# ---------------------------------------------------------------------------------------------
# Services: environment, names, grants
# ---------------------------------------------------------------------------------------------


def test_every_service_has_its_module_block():
    assert set(root().locals.get("consumers", {})) == set(code_facts.CONSUMERS), "one entry per consumer service"
    for service in code_facts.SERVICES:
        block = service_block(service)
        assert unquote(block["source"]) == SOURCE_OF[service], service
        assert unquote(block["service"]) == service, f"the module block of {service} deploys another service"


@pytest.mark.parametrize("argument", ["environment", "dynamodb_tables"])
def test_consumer_entries_only_add_to_what_every_consumer_gets(argument):
    """A service's entry in `local.consumers` adds variables and grants; it never restates or
    overrides one every consumer gets (which `merge` would let it do silently)."""
    call = _call(root().modules[CONSUMER_MODULE][argument])
    assert call is not None and call[0] == "merge", f"module.{CONSUMER_MODULE}: {argument} is not a merge()"
    common, *rest = call[1]
    assert isinstance(common, dict) and rest, f"module.{CONSUMER_MODULE}: merge({{what every consumer gets}}, the entry's)"
    handlers = root().locals["event_handler"][argument]
    assert not set(common) & set(handlers), f"local.event_handler.{argument} restates what every consumer gets"
    # What the services that handle events get with `consumer_initial_position = "ARCHIVE"`.
    catch_up = root().locals["catch_up"][argument]
    assert not (set(common) | set(handlers)) & set(catch_up), f"local.catch_up.{argument} restates what they get anyway"
    for service, entry in root().locals["consumers"].items():
        overlap = sorted((set(common) | set(handlers)) & set(entry.get(argument, {})))
        assert not overlap, f"local.consumers[{service!r}].{argument} restates {overlap}"
        if entry.get("event_handler"):
            overlap = sorted(set(catch_up) & set(entry.get(argument, {})))
            assert not overlap, f"local.consumers[{service!r}].{argument} restates what local.catch_up gives it: {overlap}"


def test_only_event_handlers_get_the_event_store_relay_and_dead_letters():
    """Each entry says whether the service handles events; a record service (the archiver) gets
    no event store, relay or dead-letter table, variable or grant, and no dead-letter alarm."""
    for service, entry in root().locals["consumers"].items():
        handler = service not in code_facts.RECORD_SERVICES
        assert entry.get("event_handler") is handler, (
            f"local.consumers[{service!r}].event_handler must be {str(handler).lower()}"
        )
        block = service_block(service)
        assert block["dead_letter_alarm"] is handler, service
        shared = {"EVENTS_TABLE", "IDEMPOTENCY_TABLE", "DEAD_LETTER_TABLE", "RELAY_DEAD_LETTER_TABLE"}
        if handler:
            assert shared <= set(block["environment"]), service
            assert '"kinesis:PutRecords"' in block["stream_actions"], service
        else:
            assert not shared & (set(block["environment"]) | set(block["dynamodb_tables"])), service
            assert '"kinesis:PutRecords"' not in block["stream_actions"], service
    relay = root().locals["relay_services"]
    assert "if consumer.event_handler" in relay, "only the services that handle events run a relay (relay alarms)"


@pytest.mark.parametrize("initial_position", INITIAL_POSITIONS)
@pytest.mark.parametrize("service", code_facts.SERVICES)
def test_environment_sets_what_the_code_needs_and_nothing_else(service, initial_position):
    block = service_block(service, deployed_with(initial_position))
    environment = block.get("environment", {})
    secrets = block.get("secrets", {})
    both = set(environment) & set(secrets)
    assert not both, f"{service}: {sorted(both)} set in both environment and secrets"
    configured = set(environment) | set(secrets)
    reads = code_facts.env_reads(service, initial_position)

    missing = sorted(r.name for r in reads.values() if r.required and r.name not in configured)
    assert not missing, f"{service} must get {missing}"

    unknown = sorted(n for n in configured if n not in reads and not code_facts.is_external(n))
    assert not unknown, f"{service}'s code never reads {unknown}"

    leaked = sorted(n for n in environment if SECRET_VARIABLES.search(n))
    assert not leaked, f"{service}: {leaked} must come from `secrets` (Secrets Manager), not the environment"

    ev = evaluator()
    for name, expected in getattr(code_facts, "REQUIRED_VALUES", {}).get(service, {}).items():
        assert ev.value(environment.get(name)) == expected, f"{service}: {name} must be {expected!r}"

    # One of a group must be set, and the root module refuses a plan without exactly one.
    conditions = " ".join(
        str(p["condition"])
        for body in root().resources.values()
        for lifecycle in body.get("lifecycle", [])
        for p in lifecycle.get("precondition", [])
    )
    for group in getattr(code_facts, "ONE_OF", {}).get(service, []):
        present = group & configured
        assert present == group, f"{service}: offer every one of {sorted(group)} (exactly one is set)"
        for name in group:
            expression = (environment | secrets)[name]
            match = re.fullmatch(r"\$\{var\.([a-z0-9_]+)\}", expression)
            assert match, f"{service}: {name} should come straight from a variable"
            assert f"var.{match.group(1)}" in conditions, (
                f"no precondition checks that exactly one of {sorted(group)} is set"
            )


@pytest.mark.parametrize("service", code_facts.SERVICES)
def test_variables_feeding_a_setting_default_to_the_codes_default(service):
    """A root variable passed straight to a setting, with a default of its own, has the code's."""
    reads = code_facts.env_reads(service)
    for name, expression in service_block(service).get("environment", {}).items():
        match = re.fullmatch(r"\$\{var\.([a-z0-9_]+)\}", str(expression))
        read = reads.get(name)
        if not match or read is None or not read.literal_default:
            continue
        default = root().variables[match.group(1)].get("default")
        if default is None:
            continue
        assert str(unquote(str(default))) == read.default, (
            f"{service}: var.{match.group(1)} defaults to {default!r}, {name}'s default in the code is {read.default!r}"
        )


@pytest.mark.parametrize("initial_position", INITIAL_POSITIONS)
@pytest.mark.parametrize("prefix", ["", "stg-"])
@pytest.mark.parametrize("service", code_facts.SERVICES)
def test_tables_and_stream_have_the_names_the_code_uses(service, prefix, initial_position):
    environment = service_block(service, deployed_with(initial_position)).get("environment", {})
    reads = code_facts.env_reads(service, initial_position)
    defaults = code_facts.default_names(service, initial_position)
    ev = evaluator(prefix, deployed_with(initial_position))
    for variable in RESOURCE_VARIABLES:
        if variable not in reads:
            assert variable not in environment, f"{service} does not read {variable}"
            continue
        assert variable in environment, f"{service} reads {variable}: name the resource explicitly"
        assert variable in defaults, f"code_facts knows no default name for {service}'s {variable}"
        if variable in code_facts.BUCKET_VARIABLES:
            # S3 names are global: the bucket's is the code's default after the prefix, then the
            # account and region.
            bucket = _bucket_resource(environment[variable], ("id", "bucket"))
            name = root().resources[("aws_s3_bucket", bucket)]["bucket"]
            match = re.fullmatch(r"\$\{local\.names\.(\w+)\}", name)
            assert match, f"aws_s3_bucket.{bucket} is not named in local.names"
            assert root().locals["names"][match.group(1)] == (
                f'"${{var.name_prefix}}{defaults[variable]}-${{local.account_id}}-${{local.region}}"'
            ), (service, variable)
            continue
        assert ev.value(environment[variable]) == prefix + defaults[variable], (service, variable)


@pytest.mark.parametrize("prefix", ["", "stg-"])
def test_the_operations_view_watches_every_consumer_deployed(prefix):
    """event-source's operations view reads each consumer application's lease table and the
    consumers' dead letters: OPS_APPLICATIONS names exactly the consumer services deployed
    (`local.consumers`), in pipeline order, each with the lease table its own LEASE_TABLE names
    (so with a prefix too; without one, that is the code's default), and DEAD_LETTER_TABLE is
    the table the consumers that handle events write their dead letters to."""
    environment = service_block("event-source")["environment"]
    assert "OPS_APPLICATIONS" in code_facts.env_reads("event-source")
    assert "OPS_APPLICATIONS" in environment, "event-source must name the applications deployed and their lease tables"
    ev = evaluator(prefix)
    watched = list_variable_tables("OPS_APPLICATIONS", environment, ev)
    deployed = [service for service in code_facts.CONSUMERS if service in root().locals["consumers"]]
    assert list(watched) == deployed, f"OPS_APPLICATIONS names {list(watched)}, the configuration deploys {deployed}"
    for service in deployed:
        lease_table = ev.value(service_block(service)["environment"]["LEASE_TABLE"])
        assert watched[service] == lease_table, f"OPS_APPLICATIONS: {service}'s lease table is {lease_table}, not {watched[service]}"
    if not prefix:
        assert watched == code_facts.ops_applications(), "with no prefix, the code's default"
    for service in deployed:
        if service not in code_facts.RECORD_SERVICES:
            assert service_block(service)["environment"]["DEAD_LETTER_TABLE"] == environment["DEAD_LETTER_TABLE"], service


@pytest.mark.parametrize("initial_position", INITIAL_POSITIONS)
@pytest.mark.parametrize("service", code_facts.SERVICES)
def test_task_role_grants_exactly_what_the_code_calls(service, initial_position):
    block = service_block(service, deployed_with(initial_position))
    environment = block.get("environment", {})
    reads = code_facts.env_reads(service, initial_position)
    calls = code_facts.aws_calls(service, initial_position)
    index_only = code_facts.index_only_calls(service)
    table_only = code_facts.table_only_calls(service)
    suffixed = code_facts.suffixed_calls(service)
    ev = evaluator(variables=deployed_with(initial_position))
    indexes = table_indexes()
    granted: dict[str, set[str]] = {}
    # Variables naming several tables: entry → what its table is granted.
    listed: dict[str, dict[str, set[str]]] = {}

    for key, grant in block.get("dynamodb_tables", {}).items():
        variable, entry = grant_key(key)
        assert variable in environment, f"{service}: a grant on {variable}, which the service is not given"
        if entry is None:
            assert variable not in code_facts.TABLE_LIST_VARIABLES, f"{service}: {variable} names several tables: key its grants {variable}[<entry>]"
            table = ev.value(environment[variable])
        else:
            tables = list_variable_tables(variable, environment, ev)
            assert entry in tables, f"{service}: a grant on {key}, but {variable} names no {entry} ({sorted(tables)})"
            table = tables[entry]
        arn = ev.value(grant["arn"])
        assert arn == Arn("aws_dynamodb_table", table), (
            f"{service}: the {variable} grant is on {arn}, the service uses the table {table}"
        )
        actions = set(ev.value(grant["actions"]))
        index_actions = set(ev.value(grant.get("index_actions", [])))
        only_on_indexes = index_only.get(variable, set())
        assert not actions & only_on_indexes, (
            f"{service}: {sorted(actions & only_on_indexes)} granted on {table} itself; the code calls them on its indexes only"
        )
        if entry is None:
            granted[variable] = actions | (index_actions & only_on_indexes)
        else:
            listed.setdefault(variable, {})[entry] = actions | (index_actions & only_on_indexes)
        on_table_only = table_only.get(variable, set())
        expected = (calls.get(variable, set()) & INDEX_ACTIONS) - on_table_only if indexes.get(table) else set()
        assert index_actions == expected, (
            f"{service}: actions on the indexes of {table} ({sorted(indexes.get(table, []))}) should be "
            f"{sorted(expected)}, not {sorted(index_actions)}"
        )

        # The tables named `<table>-<suffix>` (they have the home table's indexes: the CLI
        # creates them with the same schema).
        copies = ev.value(grant.get("suffixed_tables"))
        if variable not in code_facts.SUFFIXED_TABLES:
            assert copies is None, f"{service}: {variable} names one table; no grant on {table}-*"
            continue
        assert copies is not None, (
            f"{service}: no grant on {table}-* ({code_facts.SUFFIXED_TABLES[variable]}): give {variable} `suffixed_tables`"
        )
        copy_actions = set(copies["actions"])
        copy_index_actions = set(copies.get("index_actions", []))
        assert not copy_actions & only_on_indexes, (
            f"{service}: {sorted(copy_actions & only_on_indexes)} granted on {table}-* themselves; the code calls them on indexes only"
        )
        copies_granted = copy_actions | (copy_index_actions & only_on_indexes)
        copies_expected = suffixed.get(variable, set())
        assert copies_granted == copies_expected, (
            f"{service}: on {table}-* the code calls {sorted(copies_expected)}, granted {sorted(copies_granted)}"
        )
        expected = copies_expected & INDEX_ACTIONS if indexes.get(table) else set()
        assert copy_index_actions == expected, (
            f"{service}: actions on the indexes of {table}-* should be {sorted(expected)}, not {sorted(copy_index_actions)}"
        )

    # A variable naming several tables: every table it names, each with what the code calls.
    for variable in code_facts.TABLE_LIST_VARIABLES:
        if variable not in calls and variable not in listed:
            continue
        tables = list_variable_tables(variable, environment, ev)
        entries = listed.get(variable, {})
        assert set(entries) == set(tables), (
            f"{service}: {variable} names {sorted(tables)}, granted {sorted(entries)}"
        )
        for entry, actions in entries.items():
            assert actions == calls.get(variable, set()), (
                f"{service}: on {variable}[{entry}] ({tables[entry]}) the code calls {sorted(calls.get(variable, set()))}, granted {sorted(actions)}"
            )
        granted[variable] = set().union(*entries.values())

    stream_lists = {
        name: set(ev.value(block.get(name, [])))
        for name in ["stream_actions", "stream_polling_actions", "stream_fanout_actions"]
    }
    assert not (stream_lists["stream_polling_actions"] & stream_lists["stream_fanout_actions"]), service
    stream_actions = set().union(*stream_lists.values())
    if stream_actions:
        assert ev.value(block["stream_arn"]) == Arn("aws_kinesis_stream", ev.value(environment["EVENT_STREAM"])), (
            f"{service}: the stream grant is not on the stream named by EVENT_STREAM"
        )
        granted["EVENT_STREAM"] = stream_actions
    for variable, grant in block.get("s3_buckets", {}).items():
        assert variable in code_facts.BUCKET_VARIABLES, f"{service}: an S3 grant keyed by {variable}, which names no bucket"
        assert variable in environment, f"{service}: a grant on {variable}, which the service is not given"
        bucket = _bucket_resource(environment[variable], ("id", "bucket"))
        assert _bucket_resource(grant["arn"], ("arn",)) == bucket, (
            f"{service}: the {variable} grant is not on aws_s3_bucket.{bucket}, the bucket the service uses"
        )
        prefix = code_facts.BUCKET_VARIABLES[variable]
        if prefix in reads:
            assert prefix in environment and grant.get("prefix") == environment[prefix], (
                f"{service}: objects are granted under {grant.get('prefix')}, the service writes under {prefix}"
            )
        else:
            # A reader of objects others write (it takes their keys from elsewhere, e.g. the
            # archive's manifest): the objects under the prefix their writers are given.
            writers = [s for s in code_facts.SERVICES if prefix in code_facts.env_reads(s) and variable in code_facts.env_reads(s)]
            assert writers, f"{service}: no service writes under {prefix} in {variable}"
            for writer in writers:
                assert grant.get("prefix") == service_block(writer)["environment"].get(prefix), (
                    f"{service}: objects are granted under {grant.get('prefix')}, {writer} writes them under its {prefix}"
                )
        bucket_actions = set(ev.value(grant.get("bucket_actions", [])))
        object_actions = set(ev.value(grant.get("object_actions", [])))
        assert bucket_actions <= BUCKET_LEVEL_ACTIONS and not object_actions & BUCKET_LEVEL_ACTIONS, (
            f"{service}: {sorted(BUCKET_LEVEL_ACTIONS)} on the bucket, the others on its objects"
        )
        granted[variable] = bucket_actions | object_actions
        # The bucket's own KMS key, if it has one.
        encryption = [
            body["rule"][0]["apply_server_side_encryption_by_default"][0]
            for (rtype, _), body in root().resources.items()
            if rtype == "aws_s3_bucket_server_side_encryption_configuration"
            and _bucket_resource(body["bucket"], ("id", "bucket")) == bucket
        ]
        assert len(encryption) == 1, f"aws_s3_bucket.{bucket} has no encryption configuration"
        kms = encryption[0].get("kms_master_key_id") if unquote(encryption[0]["sse_algorithm"]) == "aws:kms" else None
        assert grant.get("kms_key_arn") == kms, f"{service}: the {variable} grant's KMS key is not the bucket's ({kms})"

    efo = set(ev.value(block.get("efo_consumer_actions", [])))
    if efo:
        granted["EFO_CONSUMER"] = efo
    if block.get("ses_send") is True:
        granted["ses"] = {"ses:SendEmail"}
    if block.get("sns_publish") is True:
        granted["sns"] = {"sns:Publish"}

    expected = {key: set(actions) for key, actions in calls.items()}
    missing = {k: sorted(v - granted.get(k, set())) for k, v in expected.items() if v - granted.get(k, set())}
    extra = {k: sorted(v - expected.get(k, set())) for k, v in granted.items() if v - expected.get(k, set())}
    assert not missing and not extra, f"{service}: not granted {missing}; granted but never called {extra}"


#: The services that follow the read model's routing to its blue/green tables.
READ_MODEL_SERVICES = ["event-source", "fulfillment", "projector"]


@pytest.mark.parametrize("service", READ_MODEL_SERVICES)
def test_read_model_services_are_granted_its_blue_green_tables(service):
    """`quotes rebuild read-model --into <READ_MODEL_TABLE>-<suffix>` and `quotes read-model
    switch` move the services to another table without a restart: each service that reads
    READ_MODEL_TABLE may read the routing document in the home table (GetItem) and reach the
    tables `<arn>-*` and their indexes `<arn>-*/index/*`, with what its code calls there."""
    assert sorted(s for s in code_facts.SERVICES if "READ_MODEL_TABLE" in code_facts.env_reads(s)) == READ_MODEL_SERVICES
    grant = service_block(service)["dynamodb_tables"]["READ_MODEL_TABLE"]
    ev = evaluator()
    assert ev.value(grant["arn"]) == Arn("aws_dynamodb_table", ev.value(service_block(service)["environment"]["READ_MODEL_TABLE"]))
    assert "dynamodb:GetItem" in ev.value(grant["actions"]), f"{service} must read the routing document (GetItem on the home table)"
    copies = ev.value(grant.get("suffixed_tables"))
    assert copies is not None, f"{service}: no grant on the read model's blue/green tables"
    actions = set(copies["actions"])
    index_actions = set(copies.get("index_actions", []))
    # The readiness ping (DescribeTable) goes to the active table; what else, per service.
    assert "dynamodb:DescribeTable" in actions, service
    expected = {
        "event-source": ({"dynamodb:DescribeTable", "dynamodb:Query"}, {"dynamodb:Query"}),
        "fulfillment": ({"dynamodb:DescribeTable"}, {"dynamodb:Query"}),
        "projector": ({"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"}, set()),
    }[service]
    assert (actions, index_actions) == expected, f"{service}: on <READ_MODEL_TABLE>-* {sorted(actions)}, indexes {sorted(index_actions)}"

    # The module grants them on `<arn>-*` and `<arn>-*/index/*`: the `-` keeps out another table
    # whose name merely begins with the read model's (`customer-quotes2`).
    statements = _policy_statements("fargate-service", "task")
    suffixed = [s for s in statements if "suffixed_table_grants" in str(s.get("for_each"))]
    assert sorted(s["resources"] for s in suffixed) == [
        ['"${statement.value.arn}-*"'],
        ['"${statement.value.arn}-*/index/*"'],
    ]
    by_resource = {s["resources"][0]: s["actions"] for s in suffixed}
    assert by_resource['"${statement.value.arn}-*"'] == "${statement.value.actions}"
    assert by_resource['"${statement.value.arn}-*/index/*"'] == "${statement.value.index_actions}"
    grants = load_module(TERRAFORM / "modules" / "fargate-service").locals["suffixed_table_grants"]
    assert "table.suffixed_tables.actions" in grants and "table.suffixed_tables.index_actions" in grants and "table.arn" in grants
    for module in ("fargate-service", "consumer-service"):
        variable = load_module(TERRAFORM / "modules" / module).variables["dynamodb_tables"]
        assert "suffixed_tables" in str(variable["type"]), f"{module}: dynamodb_tables has no suffixed_tables"


@pytest.mark.parametrize("service", code_facts.CONSUMERS)
def test_catch_up_from_the_archive_is_granted_only_with_archive(service):
    """`consumer_initial_position = "ARCHIVE"` (CONSUMER_INITIAL_POSITION=ARCHIVE): a shard
    without a checkpoint is read from the archive first. Each consumer service that handles
    events then gets ARCHIVE_BUCKET and ARCHIVE_MANIFEST_TABLE (not ARCHIVE_PREFIX: the reader
    takes each segment's key from the manifest), `dynamodb:Query` on the manifest table (no
    GetItem, no index: it has none), `s3:GetObject` on `<bucket>/<archive_prefix>*`, where the
    archiver writes (no `s3:ListBucket`: it never lists), with the bucket's KMS key through S3
    (the module adds `kms:Decrypt` for GetObject; the table's key, the platform key, every task
    role has through DynamoDB), and nothing else changes. The archiver, which writes the
    archive, keeps the code's default position and its own grants. With the default position no
    consumer but the archiver gets anything of the archive."""
    position = code_facts.archive_position()
    assert root().locals["archive_catch_up"] == f'${{var.consumer_initial_position == "{position}"}}'
    assert "CONSUMER_INITIAL_POSITION" not in service_block("event-source")["environment"]
    default = service_block(service)
    archive = service_block(service, deployed_with(position))
    ev = evaluator(variables=deployed_with(position))
    names = {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE"}
    assert code_facts.catch_up_variables() == names

    if not code_facts.catches_up(service, position):
        assert service in code_facts.NO_CATCH_UP
        assert "CONSUMER_INITIAL_POSITION" not in archive["environment"], f"{service} keeps the code's default position"
        assert archive["environment"] == {k: v for k, v in default["environment"].items() if k != "CONSUMER_INITIAL_POSITION"}
        assert (archive["dynamodb_tables"], archive["s3_buckets"]) == (default["dynamodb_tables"], default["s3_buckets"])
        return

    # By default: nothing of the archive.
    assert not (names | {"ARCHIVE_PREFIX"}) & set(default["environment"]), service
    assert "ARCHIVE_MANIFEST_TABLE" not in default["dynamodb_tables"] and default["s3_buckets"] == {}, service

    # With ARCHIVE: the position, the archive's names, and read-only grants on it.
    assert ev.value(archive["environment"]["CONSUMER_INITIAL_POSITION"]) == position
    assert set(archive["environment"]) - set(default["environment"]) == names
    assert {k: v for k, v in archive["environment"].items() if k not in names} == default["environment"]
    archiver = service_block("archiver")["environment"]
    assert archive["environment"]["ARCHIVE_BUCKET"] == archiver["ARCHIVE_BUCKET"] == "${aws_s3_bucket.archive.id}"
    assert archive["environment"]["ARCHIVE_MANIFEST_TABLE"] == archiver["ARCHIVE_MANIFEST_TABLE"]
    manifest = ev.value(archive["environment"]["ARCHIVE_MANIFEST_TABLE"])
    assert manifest == code_facts.default_names()["ARCHIVE_MANIFEST_TABLE"]

    table = archive["dynamodb_tables"]["ARCHIVE_MANIFEST_TABLE"]
    assert ev.value(table["arn"]) == Arn("aws_dynamodb_table", manifest)
    assert ev.value(table["actions"]) == ["dynamodb:Query"]
    assert not table.get("index_actions") and table.get("suffixed_tables") is None and not table_indexes()[manifest]
    assert root().modules["archive_manifest_table"]["kms_key_arn"] == archive["data_kms_key_arn"], (
        "the manifest is encrypted with the key every task role uses through DynamoDB"
    )
    bucket = archive["s3_buckets"]["ARCHIVE_BUCKET"]
    assert _bucket_resource(bucket["arn"], ("arn",)) == "archive"
    assert bucket["prefix"] == archiver["ARCHIVE_PREFIX"] == "${var.archive_prefix}"
    assert not bucket.get("bucket_actions"), f"{service} never lists the archive"
    assert ev.value(bucket["object_actions"]) == ["s3:GetObject"]
    assert bucket["kms_key_arn"] == "${aws_kms_key.platform.arn}"
    kms = load_module(TERRAFORM / "modules" / "fargate-service").locals["s3_kms_grants"]
    assert 'contains(bucket.object_actions, "s3:GetObject") ? ["kms:Decrypt"]' in kms

    for argument in ("dynamodb_tables", "s3_buckets"):
        granted = {k: v for k, v in archive[argument].items() if k not in names}
        assert granted == default[argument], f"{service}: ARCHIVE changes its {argument} beyond the archive's"
    assert code_facts.aws_calls(service, position)["ARCHIVE_MANIFEST_TABLE"] == {"dynamodb:Query"}
    assert code_facts.aws_calls(service, position)["ARCHIVE_BUCKET"] == {"s3:GetObject"}


def _bucket_resource(expression: str, attributes: tuple[str, ...]) -> str:
    """The name of the `aws_s3_bucket` an expression refers to (`${aws_s3_bucket.<name>.<attribute>}`)."""
    match = re.fullmatch(r"\$\{aws_s3_bucket\.(\w+)\.(\w+)\}", str(expression))
    assert match and match.group(2) in attributes, f"{expression} is not a bucket's {' or '.join(attributes)}"
    return match.group(1)


def _policy_statements(module: str, document: str) -> list[dict]:
    body = load_module(TERRAFORM / "modules" / module).data[("aws_iam_policy_document", document)]
    statements = list(body.get("statement", []))
    for dynamic in body.get("dynamic", []):
        for name, inner in dynamic.items():
            assert name == "statement", f"{module}: unexpected dynamic block {name}"
            for content in inner["content"]:
                statements.append(dict(content, for_each=inner["for_each"]))
    return statements


def test_task_policy_grants_only_the_inputs_and_the_platform_statements():
    """The module adds nothing to the grants the root module gives it except the collector's
    and the platform key's statements (which the check above leaves aside)."""
    literal_actions = set()
    expression_actions = set()
    for statement in _policy_statements("fargate-service", "task"):
        actions = statement["actions"]
        if isinstance(actions, list):
            literal_actions.update(unquote(a) for a in actions)
        else:
            expression_actions.add(actions)
        if any(unquote(a).startswith("kms:") for a in (actions if isinstance(actions, list) else [])):
            assert "kms:ViaService" in str(statement.get("condition")), "the data key is used only through DynamoDB and Kinesis"
    assert literal_actions <= PLATFORM_ACTIONS | {"ses:SendEmail", "sns:Publish"}, literal_actions - PLATFORM_ACTIONS
    assert expression_actions == {
        "${statement.value.actions}",
        "${statement.value.index_actions}",
        "${statement.value.bucket_actions}",
        "${statement.value.object_actions}",
        "${statement.value.kms_actions}",
        "${var.stream_actions}",
        "${var.efo_consumer_actions}",
    }, expression_actions
    by_actions = {s["actions"]: s for s in _policy_statements("fargate-service", "task") if isinstance(s["actions"], str)}
    assert by_actions["${statement.value.object_actions}"]["resources"] == ['"${statement.value.arn}/${statement.value.prefix}*"'], (
        "object actions only under the service's prefix"
    )
    s3_key = by_actions["${statement.value.kms_actions}"]
    assert s3_key["condition"][0]["variable"] == '"kms:ViaService"' and s3_key["condition"][0]["values"] == [
        '"s3.${data.aws_region.current.name}.amazonaws.com"'
    ], "a bucket's key is used through S3 only"
    kms = load_module(TERRAFORM / "modules" / "fargate-service").locals["s3_kms_grants"]
    assert '"s3:PutObject"' in kms and '"kms:GenerateDataKey"' in kms and '"s3:GetObject"' in kms and '"kms:Decrypt"' in kms

    service = load_module(TERRAFORM / "modules" / "consumer-service").modules["service"]
    assert service["efo_consumer_actions"] == "${local.fanout ? var.efo_consumer_actions : []}"
    assert "local.fanout ? var.stream_fanout_actions : var.stream_polling_actions" in service["stream_actions"]


@pytest.mark.parametrize("service", code_facts.CONSUMERS)
def test_consumers_read_the_stream_the_way_their_grants_and_scaling_assume(service):
    block = service_block(service)
    assert block["environment"].get("CONSUMER_SOURCE") == block.get("consumer_source"), (
        f"{service}: CONSUMER_SOURCE and the module's consumer_source must be the same variable"
    )


@pytest.mark.parametrize("service", code_facts.CONSUMERS)
def test_consumers_never_scale_past_the_shards(service):
    block = service_block(service)
    ev = evaluator()
    max_tasks = ev.value(block["max_tasks"])
    shards = ev.value(block["shard_count"])
    assert isinstance(max_tasks, int) and isinstance(shards, int)
    assert max_tasks <= shards, f"{service}: up to {max_tasks} tasks for {shards} shards"
    assert block["shard_count"] == "${var.stream_shard_count}", f"{service}: shard_count must be the stream's"

    module = load_module(TERRAFORM / "modules" / "consumer-service")
    target = module.resources[("aws_appautoscaling_target", "this")]
    assert target["max_capacity"] == "${var.max_tasks}"
    conditions = [p["condition"] for p in target["lifecycle"][0]["precondition"]]
    assert "${var.max_tasks <= var.shard_count}" in conditions, "the module must refuse max_tasks > shard_count"


@pytest.mark.parametrize("service", code_facts.SERVICES)
def test_services_get_time_to_drain(service):
    block = service_block(service)
    ev = evaluator()
    if "stop_timeout" in block:
        stop = ev.value(block["stop_timeout"])
    else:
        stop = load_module((TERRAFORM / unquote(block["source"])).resolve()).variables["stop_timeout"]["default"]
    assert 60 <= stop <= 120, f"{service}: stopTimeout {stop} s (60–120 s: drain, release leases, checkpoint)"
    container = load_module(TERRAFORM / "modules" / "fargate-service").locals["service_container"]
    assert container["stopTimeout"] == "${var.stop_timeout}"


# ---------------------------------------------------------------------------------------------
# Tables: what the code's create functions make
# ---------------------------------------------------------------------------------------------

#: Per table variable: (file with the create function, hash key, range key, attributes, GSIs
#: as name → (hash, range), TTL attribute). Every name is also looked up in the file.
CODE_TABLES = {
    "EVENTS_TABLE": (
        "shared/event-store/src/dynamodb/schema.rs",
        "stream_id",
        "version",
        {"stream_id": "S", "version": "N", "customer_id": "S", "recorded_at": "S", "pending_bucket": "S", "pending_since": "N"},
        {"by-customer": ("customer_id", "recorded_at"), "unpublished": ("pending_bucket", "pending_since")},
        None,
    ),
    "IDEMPOTENCY_TABLE": (
        "shared/event-store/src/dynamodb/schema.rs",
        "idempotency_key",
        None,
        {"idempotency_key": "S"},
        {},
        "expires_at",
    ),
    "READ_MODEL_TABLE": (
        "shared/read-model/src/dynamodb.rs",
        "customer_id",
        "quote_id",
        {"customer_id": "S", "quote_id": "S", "pending_bucket": "S", "pending_since": "S"},
        {"by-quote": ("quote_id", None), "pending": ("pending_bucket", "pending_since")},
        None,
    ),
    "DEAD_LETTER_TABLE": (
        "shared/kinesis-consumer/src/dead_letter.rs",
        "source",
        "sequence_number",
        {"source": "S", "sequence_number": "S", "application_key": "S"},
        {"by-key": ("application_key", "sequence_number")},
        None,
    ),
    "RELAY_DEAD_LETTER_TABLE": (
        "shared/event-relay/src/dead_letter.rs",
        "stream_id",
        "version",
        {"stream_id": "S", "version": "N"},
        {},
        None,
    ),
    "NOTIFICATIONS_TABLE": ("services/notifier/src/ledger.rs", "notification_id", None, {"notification_id": "S"}, {}, None),
    "LEASE_TABLE": ("shared/kinesis-consumer/src/lease_table/dynamodb/codec.rs", "leaseKey", None, {"leaseKey": "S"}, {}, None),
    "ARCHIVE_MANIFEST_TABLE": ("shared/archive/src/dynamodb.rs", "stream", "entry", {"stream": "S", "entry": "S"}, {}, None),
}

#: GSIs the code creates with a projection other than ALL: (table variable, index) →
#: (projection, what the create function's file says for it).
CODE_PROJECTIONS = {
    ("READ_MODEL_TABLE", "pending"): ("KEYS_ONLY", "ProjectionType::KeysOnly"),
}


def _table_blocks() -> dict[str, list[dict]]:
    """Table variable → the dynamodb-table module blocks (arguments) creating such tables."""
    names = code_facts.default_names()
    ev = evaluator()
    found: dict[str, list[dict]] = {}
    for name, block in root().modules.items():
        if unquote(block["source"]) != "./modules/dynamodb-table":
            continue
        keys = list(ev.value(block["for_each"])) if "for_each" in block else [None]
        for key in keys:
            table = ev.child(name, key).variable("name")
            if table.endswith("-leases"):
                variable = "LEASE_TABLE"
            else:
                matches = [v for v, n in names.items() if n == table and v.endswith("_TABLE")]
                assert len(matches) == 1, f"module.{name} creates {table}, which no service variable names"
                variable = matches[0]
            if block not in found.setdefault(variable, []):
                found[variable].append(block)
    return found


def test_tables_are_the_ones_the_code_creates():
    blocks = _table_blocks()
    assert set(blocks) == set(CODE_TABLES)
    assert len(blocks["LEASE_TABLE"]) == 1 and "for_each" in blocks["LEASE_TABLE"][0]
    leases = evaluator().value(blocks["LEASE_TABLE"][0]["for_each"])
    assert leases == code_facts.default_lease_tables(), "one lease table per consumer application"
    ev = evaluator()
    for variable, (file, hash_key, range_key, attributes, indexes, ttl) in CODE_TABLES.items():
        source = (ROOT / file).read_text()
        for name in [hash_key, range_key, *attributes, *indexes, ttl]:
            if name is not None:
                assert f'"{name}"' in source, f"{file} no longer mentions {name!r}: update CODE_TABLES"
        block = blocks[variable][0]
        assert ev.value(block["hash_key"]) == hash_key, variable
        assert ev.value(block.get("range_key")) == range_key, variable
        assert {a["name"]: a["type"] for a in ev.value(block["attributes"])} == attributes, variable
        gsis = {g["name"]: (g["hash_key"], g.get("range_key")) for g in ev.value(block.get("global_secondary_indexes", []))}
        assert gsis == indexes, variable
        for g in ev.value(block.get("global_secondary_indexes", [])):
            projection, marker = CODE_PROJECTIONS.get((variable, g["name"]), ("ALL", None))
            if marker is not None:
                assert marker in source, f"{file} no longer creates {g['name']} with {marker}: update CODE_PROJECTIONS"
            assert g.get("projection_type", "ALL") == projection, f"{variable}: the code projects {projection} on {g['name']}"
        assert ev.value(block.get("ttl_attribute")) == ttl, variable


def test_table_module_protects_the_data():
    table = load_module(TERRAFORM / "modules" / "dynamodb-table").resources[("aws_dynamodb_table", "this")]
    assert unquote(table["billing_mode"]) == "PAY_PER_REQUEST"
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["kms_key_arn"] == "${var.kms_key_arn}"
    assert table["deletion_protection_enabled"] == "${var.deletion_protection}"
    assert load_module(TERRAFORM).variables["deletion_protection"]["default"] is True


# ---------------------------------------------------------------------------------------------
# Tooling around the Terraform
# ---------------------------------------------------------------------------------------------


def test_workflow_runs_fmt_validate_and_tflint_with_pinned_actions():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    text = WORKFLOW.read_text()
    for command in [r"terraform fmt -check -recursive", r"terraform (-chdir=\S+ )?init -backend=false",
                    r"terraform (-chdir=\S+ )?validate", r"tflint --init", r"tflint --recursive"]:
        assert re.search(command, text), f"the workflow does not run `{command}`"
    assert "terraform/modules/*/" in text, "the workflow validates the modules too"
    uses = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert uses, "the workflow uses no actions?"
    for action in uses:
        assert re.search(r"@(v\d+\.\d+\.\d+|[0-9a-f]{40})$", action), f"{action} is not pinned to a version"
    config = TFLINT_CONFIG.read_text()
    assert 'plugin "aws"' in config and re.search(r'version\s*=\s*"\d+\.\d+\.\d+"', config)


WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow(name: str) -> tuple[dict, str]:
    text = (WORKFLOWS / name).read_text()
    workflow = yaml.safe_load(text)
    # YAML 1.1 reads the key `on` as a boolean.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow, text


def _workflow_steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_new_workflows_pin_their_actions(name):
    workflow, _ = _workflow(name)
    uses = [step["uses"] for step in _workflow_steps(workflow) if "uses" in step]
    assert uses, f"{name} uses no actions?"
    for action in uses:
        assert re.search(r"@(v\d+\.\d+\.\d+|[0-9a-f]{40})$", action), f"{name}: {action} is not pinned to a version"


def test_ci_workflow_runs_the_test_command_on_every_push():
    workflow, text = _workflow("ci.yml")
    assert "push" in workflow["on"] and "pull_request" in workflow["on"]
    assert not (workflow["on"]["push"] or {}).get("branches"), "every push, not some branches"
    runs = [step.get("run", "") for step in _workflow_steps(workflow)]
    assert any(run.strip() == "bash .ci/run" for run in runs), "the workflow runs exactly the test command"
    assert "terraform_version: 1.11.4" in text, "the Terraform the project's machines have"
    assert "providers mirror" in text and "TF_PLUGIN_MIRROR" in text, "the apply test needs a provider mirror"
    assert "rust-toolchain.toml" in text or "rustup" in text


def test_release_workflow_pushes_the_image_to_ghcr_on_version_tags():
    workflow, text = _workflow("release.yml")
    assert workflow["on"] == {"push": {"tags": ["v*"]}}
    assert workflow["permissions"].get("packages") == "write"
    steps = {step["uses"].split("@")[0]: step for step in _workflow_steps(workflow) if "uses" in step}
    assert steps["docker/metadata-action"]["with"]["images"] == "ghcr.io/${{ github.repository }}"
    assert steps["docker/login-action"]["with"]["registry"] == "ghcr.io"
    build = steps["docker/build-push-action"]["with"]
    assert build["file"] == "docker/Dockerfile" and build["push"] is True
    assert build["tags"] == "${{ steps.meta.outputs.tags }}"


def test_tfvars_example_sets_declared_variables_only():
    example = {k: v for k, v in hcl2.loads((TERRAFORM / "terraform.tfvars.example").read_text()).items()
               if not k.startswith("__")}
    variables = root().variables
    unknown = sorted(set(example) - set(variables))
    assert not unknown, f"terraform.tfvars.example sets undeclared variables {unknown}"
    required = sorted(v for v, body in variables.items() if "default" not in body and v not in example)
    assert not required, f"terraform.tfvars.example leaves required variables unset: {required}"
    assert example.get("certificate_arn") and not example.get("trial_http_cidrs"), "the example is production (HTTPS)"


def _terraform() -> str:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("the terraform CLI is not installed (the GitHub workflow runs these checks)")
    return terraform


def test_terraform_fmt():
    result = subprocess.run([_terraform(), "fmt", "-check", "-recursive", "-diff", "-no-color"],
                            cwd=TERRAFORM, capture_output=True, text=True)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def _provider_mirror() -> Path:
    mirror = Path(os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
    if not (mirror / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no local mirror of the AWS provider at {mirror} (set TF_PLUGIN_MIRROR; the GitHub workflow downloads it)")
    return mirror


@pytest.mark.parametrize(
    "module",
    ["", "modules/consumer-service", "modules/fargate-service", "modules/dynamodb-table", "modules/network"],
    ids=lambda module: module or "root",
)
def test_terraform_validate_and_test(module, tmp_path):
    terraform = _terraform()
    mirror = _provider_mirror()
    config = tmp_path / "terraformrc"
    config.write_text(
        'provider_installation {\n'
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/hashicorp/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n}\n'
    )
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    workdir = copy / module
    env = dict(os.environ, TF_CLI_CONFIG_FILE=str(config), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")

    def run(*args):
        result = subprocess.run([terraform, *args, "-no-color"], cwd=workdir, env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"terraform {' '.join(args)} in terraform/{module}:\n{result.stdout}{result.stderr}"
        return result

    run("init", "-backend=false", "-input=false")
    run("validate")
    if (workdir / "tests").is_dir():
        run("test")
