"""What the Rust code reads and calls, extracted from the sources, for the deployment checks.

The compose file and the Terraform must agree with the code: every variable a service needs
is set, every table and stream name is the one `quotes bootstrap` creates, and every task
role grants exactly the AWS actions the service's code can call. This module is the code side
of those checks; `test_compose.py` and `test_terraform.py` hold the deployment side.

How the facts are found:

- Settings come from the binary itself: `quotes settings --output json` lists every variable
  with its default, the services that read it and those that refuse to start without it
  (every setting is declared once, as a clap argument). Which variables a deployment must set
  is a decision recorded below (`DEPLOY_REQUIRED`, `ONE_OF`); `test_code_facts.py` proves the
  binary refuses to start without each of the code-required ones.
- Every service runs from the one binary, `quotes run SERVICE`; the code a service runs is its
  library crate (the workspace package of the same name) with its normal dependencies within
  the workspace, transitively, read from `cargo metadata`. The `src/` trees are scanned for AWS
  calls, except binaries (`src/bin/`, other packages' `main.rs`) and unit-test modules
  (`#[cfg(test)]`).
- AWS calls are SDK builder chains `client.<operation>()…send()`. `CALLS` below says, file by
  file, which resource (by the variable that names it) and which IAM actions each operation
  needs; the scanner refuses a file or an operation the table does not cover, so a new call
  cannot slip past the IAM check.
- Some tables come in several: the read model's blue/green tables are named
  `<READ_MODEL_TABLE>-<suffix>` and the services follow a routing document to them
  (`SUFFIXED_TABLES`); `suffixed_calls` says which actions a service calls on them, which
  (`HOME_ONLY`) only on the table the variable names.
- Catch-up from the archive (`CONSUMER_INITIAL_POSITION=ARCHIVE`) is a deployment choice: a
  consumer application then also reads the archive's bucket and manifest, whose variables the
  binary's settings list for the archiver only. `catch_up_variables` reads from the settings
  code which variables the catch-up takes, `catch_up_calls` which AWS calls it reaches (the
  archive ports' methods `shared/archive/src/catch_up.rs` and the reader call, followed into the
  S3 and DynamoDB adapters); `env_reads`, `default_names` and `aws_calls` add them for a service
  deployed with that position (`initial_position=`), except where `NO_CATCH_UP` says a
  deployment never starts the service so.
- A record service (the archiver, `RECORD_SERVICES`) is a consumer whose processors checkpoint
  by themselves and never dead-letter: it runs no event store, relay or dead letters although
  its settings groups (Event store, Consumer services) parse their variables. Those variables
  are left out of what it reads (`UNUSED_BY_RECORD_SERVICES`), with the code that proves it
  (`record_service_proof`): a deployment neither needs nor gets them.
- event-source's operations view (`GET /v1/ops`) reads every consumer application's lease
  table, the consumers' dead-letter table and the relays' dead letters. The lease tables are
  named by one variable, `OPS_APPLICATIONS` (`TABLE_LIST_VARIABLES`: an entry per application,
  `name` or `name=lease-table`, parsed by `ops_applications`); what event-source calls on them is
  keyed by that variable. It links the consumer library for those reads only: `NOT_REACHED`
  proves it runs no worker, and `NOT_CHECKED_BY_RUN` that `quotes run event-source` does not
  describe the dead-letter table before starting (it reads it, but needs it only for the view).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The services deployed as containers (compose and Terraform): `quotes run SERVICE`, each
#: service's code in the library crate of the same name.
SERVICES = [
    "event-source",
    "vehicle-enricher",
    "driver-history",
    "fulfillment",
    "projector",
    "notifier",
    "archiver",
]

#: The consumer services (Kinesis consumer applications with a lease table each).
CONSUMERS = SERVICES[1:]

#: Consumer services that are record services (`quote_pipeline::service::RecordService`, wired
#: as `Consumption::Records`), not event handlers: no event store, relay or dead letters.
RECORD_SERVICES = ["archiver"]

#: Settings a record service's groups parse but it never uses, with the reason; each is proven
#: by `record_service_proof`, and left out of `env_reads`.
UNUSED_BY_RECORD_SERVICES = {
    "EVENTS_TABLE": "no event store: the event store is built only for `Consumption::Events`",
    "IDEMPOTENCY_TABLE": "no event store: the event store is built only for `Consumption::Events`",
    "DEAD_LETTER_TABLE": "nothing is dead-lettered (`FailurePolicy::RetryForever`)",
    "MAX_PROCESSING_ATTEMPTS": "nothing is dead-lettered (`FailurePolicy::RetryForever`)",
    "CHECKPOINT_EVERY_RECORDS": "its processors checkpoint by themselves (`CheckpointPolicy::MANUAL`)",
    "CHECKPOINT_EVERY_MS": "its processors checkpoint by themselves (`CheckpointPolicy::MANUAL`)",
}

#: The operations commands (`quotes bootstrap`, `quotes token`, …): the `quotes` crate.
OPERATIONS = "quotes"

#: Files of the `quotes` crate every service runs: `quotes run` checks there, before starting a
#: service, that the tables and the stream it needs exist.
RUN_FILES = ["services/quotes/src/platform/resources.rs"]

#: The binary (built by the test command before the deployment checks).
BINARY = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "quotes"

#: Variables of the OpenTelemetry SDK every service honours (`shared/runtime/src/telemetry.rs`),
#: which a deployment may set; they are not settings of ours.
SDK_READS = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"]

#: Variables the platform sets in every container, never read from our configuration.
PLATFORM_PROVIDED = {"HOSTNAME"}

#: Variables read by libraries rather than our code; a deployment may set them freely.
EXTERNAL_PREFIXES = ("AWS_", "OTEL_")
EXTERNAL_NAMES = {"RUST_LOG"}

#: Variables a deployment must set although the code has a default or can run without them,
#: with the reason. (Variables the code itself refuses to start without are found by
#: `test_code_facts.py` and listed in `CODE_REQUIRED`.)
DEPLOY_REQUIRED = {
    "*": {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "traces and metrics are exported only when it is set",
        "LOG_FORMAT": "containers log JSON lines (with trace ids) for the log pipeline",
    },
    "event-source": {
        "EVENTS_TABLE": "names the event store explicitly",
        "IDEMPOTENCY_TABLE": "names the idempotency table explicitly",
        "EVENT_STREAM": "names the stream explicitly",
        "READ_MODEL_TABLE": "names the read model explicitly",
        "RELAY_DEAD_LETTER_TABLE": "names the relay's dead-letter table explicitly",
        "DEAD_LETTER_TABLE": "names the consumer services' dead-letter table explicitly (the operations view reads it)",
    },
    "consumer": {
        "EVENT_STREAM": "names the stream explicitly",
        "LEASE_TABLE": "names the lease table explicitly",
    },
    # The consumer services that handle events (every consumer but the record services).
    "event handler": {
        "DEAD_LETTER_TABLE": "names the dead-letter table explicitly (default `quote-dead-letters`)",
        "RELAY_DEAD_LETTER_TABLE": "names the relay's dead-letter table explicitly",
        "EVENTS_TABLE": "names the event store explicitly",
    },
    "fulfillment": {"READ_MODEL_TABLE": "names the read model explicitly (its `pending` index lists the quotes past their deadline)"},
    "projector": {"READ_MODEL_TABLE": "names the read model explicitly"},
    "notifier": {"NOTIFICATIONS_TABLE": "names the ledger explicitly"},
    "archiver": {
        "ARCHIVE_BUCKET": "names the archive bucket explicitly (in AWS its name carries account and region)",
        "ARCHIVE_MANIFEST_TABLE": "names the manifest explicitly",
    },
    # A consumer deployed with CONSUMER_INITIAL_POSITION=ARCHIVE (`catch_up_variables`).
    "catch-up": {
        "ARCHIVE_BUCKET": "names the archive bucket it catches up from (in AWS its name carries account and region)",
        "ARCHIVE_MANIFEST_TABLE": "names the manifest it catches up from",
    },
}

#: Variables the code refuses to start without (each proven by `test_code_facts.py`, which
#: starts the binary without it and expects a refusal naming it).
CODE_REQUIRED = {
    "driver-history": {"DRIVER_HISTORY_PROVIDER"},
    "notifier": {"NOTIFY_FROM_EMAIL"},
}

#: Groups of which exactly one must be set (event-source with `BACKEND=aws`).
ONE_OF = {"event-source": [{"AUTH_HS256_SECRET", "AUTH_JWKS_URL"}]}

#: Values a deployment must use (none: `quotes run SERVICE` always runs on AWS).
REQUIRED_VALUES: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class EnvRead:
    """One environment variable a service's code reads."""

    name: str
    #: The default as written in the code (a literal string, or the Rust expression), if any.
    default: str | None
    #: True when the code has a default (or runs without it by design).
    defaulted: bool
    #: True when a deployment must set it (see `DEPLOY_REQUIRED`, `CODE_REQUIRED`).
    required: bool
    #: Where it is read (repository-relative paths).
    files: tuple[str, ...] = field(default=())
    #: True when `default` is a string the code uses as is (a literal or a `const`).
    literal_default: bool = False


# ---------------------------------------------------------------------------------------------
# Crates and sources
# ---------------------------------------------------------------------------------------------


@functools.cache
def _workspace() -> dict[str, dict]:
    """Workspace packages: name → {"dir": Path, "deps": [names], "bins": [names]}."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out)
    names = {p["name"] for p in meta["packages"]}
    return {
        p["name"]: {
            "dir": Path(p["manifest_path"]).parent,
            "deps": [d["name"] for d in p["dependencies"] if d["name"] in names and d["kind"] is None],
            "bins": [t["name"] for t in p["targets"] if "bin" in t["kind"]],
        }
        for p in meta["packages"]
    }


def package_of(program: str) -> str:
    """The workspace package of `program` (a service, or `OPERATIONS`)."""
    if program not in _workspace():
        raise KeyError(f"no workspace package {program!r}")
    return program


@functools.cache
def crates_of(program: str) -> tuple[str, ...]:
    """The workspace crates `program` runs (its package first)."""
    workspace = _workspace()
    order: list[str] = []
    pending = [package_of(program)]
    while pending:
        name = pending.pop(0)
        if name in order:
            continue
        order.append(name)
        pending.extend(workspace[name]["deps"])
    return tuple(order)


_TEST_MODULE = re.compile(r"^#\[cfg\(test\)\]\s*\n\s*mod\s+\w+\s*\{", re.MULTILINE)


def _strip_tests(text: str) -> str:
    """The source without its unit-test module (by convention the last item of a file)."""
    match = _TEST_MODULE.search(text)
    return text[: match.start()] if match else text


@functools.cache
def sources_of(program: str) -> dict[str, str]:
    """Repository-relative path → source text, for every file `program` runs."""
    workspace = _workspace()
    files: dict[str, str] = {}
    for crate in crates_of(program):
        src = workspace[crate]["dir"] / "src"
        for path in sorted(src.rglob("*.rs")):
            relative = path.relative_to(src)
            if relative.parts[0] == "bin":
                continue
            if crate != package_of(program) and relative.as_posix() == "main.rs":
                continue
            files[path.relative_to(ROOT).as_posix()] = _strip_tests(path.read_text())
    if program in SERVICES:
        for relative in RUN_FILES:
            files[relative] = _strip_tests((ROOT / relative).read_text())
    return files


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------

@functools.cache
def settings() -> tuple[dict, ...]:
    """Every setting, as `quotes settings --output json` lists it."""
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: build the workspace first (cargo build)")
    out = subprocess.run(
        [str(BINARY), "settings", "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTEL_"))},
    ).stdout
    return tuple(json.loads(out))


def _computed_default(meaning: str) -> str | None:
    """A default the help states in words (`[default: `<service>-leases`]`)."""
    match = re.search(r"\[default: ([^\]]+)\]", meaning)
    return match.group(1) if match else None


@functools.cache
def env_reads(program: str, initial_position: str | None = None) -> dict[str, EnvRead]:
    """Every variable `program` reads: a service, or `OPERATIONS` (the operations commands
    `bootstrap`, `token`, `leases`, … that the compose file's `bootstrap` container runs).
    With `initial_position` (a consumer service's CONSUMER_INITIAL_POSITION in the deployment),
    also what the service reads only with that position: the catch-up's variables
    (`catch_up_variables`) with `ARCHIVE`, for the services that catch up (`catches_up`)."""
    if initial_position is not None:
        reads = dict(env_reads(program))
        if catches_up(program, initial_position):
            catalogue = {s["variable"]: s for s in settings()}
            for name in sorted(catch_up_variables()):
                setting = catalogue[name]
                reads[name] = EnvRead(
                    name=name,
                    default=setting["default"],
                    defaulted=setting["default"] is not None,
                    required=name in DEPLOY_REQUIRED["catch-up"],
                    files=(CONSUMER_SETTINGS, ARCHIVE_SETTINGS),
                    literal_default=setting["default"] is not None,
                )
        return dict(sorted(reads.items()))
    if program in SERVICES:
        chosen = [s for s in settings() if program in s["services"]]
    elif program == OPERATIONS:
        chosen = [s for s in settings() if set(s["commands"]) - {"run", "healthcheck", "settings"}]
    else:
        raise KeyError(program)
    unused: set[str] = set()
    if program in RECORD_SERVICES:
        record_service_proof(program)
        unused = set(UNUSED_BY_RECORD_SERVICES)
    required = set(CODE_REQUIRED.get(program, set()))
    if program in SERVICES:
        required |= set(DEPLOY_REQUIRED["*"]) | set(DEPLOY_REQUIRED.get(program, {}))
    if program in CONSUMERS:
        required |= set(DEPLOY_REQUIRED["consumer"])
        if program not in RECORD_SERVICES:
            required |= set(DEPLOY_REQUIRED["event handler"])
    reads = {}
    for setting in chosen:
        name = setting["variable"]
        if name in unused:
            continue
        reads[name] = EnvRead(
            name=name,
            default=setting["default"] or _computed_default(setting["meaning"]),
            defaulted=setting["default"] is not None
            or _computed_default(setting["meaning"]) is not None,
            required=name in required,
            files=("services/quotes/src/settings/",),
            literal_default=setting["default"] is not None,
        )
        declared = set(setting["required_by"])
        if program in SERVICES and (program in declared) != (name in CODE_REQUIRED.get(program, set())):
            raise ValueError(f"{program}: {name} is required by the binary's settings but not in CODE_REQUIRED, or the reverse")
    if program in SERVICES:
        for name in SDK_READS:
            reads[name] = EnvRead(name=name, default=None, defaulted=True, required=name in required)
    missing = required - set(reads)
    if missing and program in SERVICES:
        raise ValueError(f"{program}: required variables the code never reads: {sorted(missing)}")
    return dict(sorted(reads.items()))


def is_external(name: str) -> bool:
    """True for variables read by libraries (AWS SDK, OpenTelemetry) or the log filter."""
    return name in EXTERNAL_NAMES or name.startswith(EXTERNAL_PREFIXES)


# ---------------------------------------------------------------------------------------------
# Resource names
# ---------------------------------------------------------------------------------------------

#: Variables that name an AWS resource (a table, the stream or a bucket).
RESOURCE_VARIABLES = [
    "EVENTS_TABLE",
    "IDEMPOTENCY_TABLE",
    "READ_MODEL_TABLE",
    "DEAD_LETTER_TABLE",
    "RELAY_DEAD_LETTER_TABLE",
    "NOTIFICATIONS_TABLE",
    "ARCHIVE_MANIFEST_TABLE",
    "LEASE_TABLE",
    "EVENT_STREAM",
    "ARCHIVE_BUCKET",
]

#: Variables naming an S3 bucket → the variable holding the key prefix of the service's objects
#: in it (the object grants are limited to `<bucket ARN>/<prefix>*`).
BUCKET_VARIABLES = {"ARCHIVE_BUCKET": "ARCHIVE_PREFIX"}

#: Variables naming several tables of one kind → the variable that names one such table in the
#: service that owns it. `OPS_APPLICATIONS` (event-source's operations view): the consumer
#: applications it watches, each with the lease table its own LEASE_TABLE names. What a service
#: calls on those tables is keyed by the list variable (`aws_calls`).
TABLE_LIST_VARIABLES = {"OPS_APPLICATIONS": "LEASE_TABLE"}


def ops_applications(value: str | None = None) -> dict[str, str]:
    """Application → lease table, as event-source reads OPS_APPLICATIONS (`OpsApplication`'s
    `FromStr`, services/event-source/src/config.rs): comma-separated entries, each `name` (lease
    table `<name>-leases`) or `name=lease-table`. `None`: the code's default."""
    if value is None:
        value = env_reads("event-source")["OPS_APPLICATIONS"].default
    if not value:
        raise ValueError("OPS_APPLICATIONS has no default in the binary's settings")
    applications: dict[str, str] = {}
    for entry in value.split(","):
        name, separator, table = entry.partition("=")
        name, table = name.strip(), table.strip() if separator else f"{entry.strip()}-leases"
        if not name or not table:
            raise ValueError(f"OPS_APPLICATIONS: {entry!r} is neither `name` nor `name=lease-table`")
        if name in applications:
            raise ValueError(f"OPS_APPLICATIONS names {name} twice")
        applications[name] = table
    return applications


#: How the settings state the lease table's default.
_LEASE_DEFAULT = "`<service>-leases`"


def default_names(service: str | None = None, initial_position: str | None = None) -> dict[str, str]:
    """Default resource names by variable: the code's defaults for `service`, or (for `None`)
    what `quotes bootstrap` creates without configuration (`LEASE_TABLE` is then absent: it
    creates one lease table per consumer, see `default_lease_tables`)."""
    reads = env_reads(service, initial_position) if service else _operations_reads()
    names: dict[str, str] = {}
    for variable in RESOURCE_VARIABLES:
        read = reads.get(variable)
        if read is None or read.default is None:
            continue
        if variable == "LEASE_TABLE":
            if service is None or read.default != _LEASE_DEFAULT:
                continue
            names[variable] = f"{service}-leases"
        elif read.literal_default:
            names[variable] = read.default
    return names


def _operations_reads() -> dict[str, EnvRead]:
    return env_reads(OPERATIONS)


def default_lease_tables() -> dict[str, str]:
    """Consumer application → the lease table `quotes bootstrap` creates for it."""
    applications = _operations_reads()["CONSUMER_APPLICATIONS"].default
    if not applications:
        raise ValueError("cannot find the default consumer applications of `quotes bootstrap`")
    return {app: f"{app}-leases" for app in applications.split(",")}


# ---------------------------------------------------------------------------------------------
# AWS calls
# ---------------------------------------------------------------------------------------------

#: Operations done by `quotes bootstrap` or Terraform, never by a running service.
PROVISIONING = {
    "create_table",
    "create_bucket",
    "update_time_to_live",
    "create_stream",
    "create_email_identity",
    "get_email_identity",
}

#: File → operation → [(resource variable or service key, [IAM actions])]. A DynamoDB grant
#: covers the table and its indexes (unless `INDEX_ONLY` proves a service needs it on the
#: indexes only). `TransactWriteItems` is authorised per item, so it maps to the item actions
#: its transactions contain.
CALLS: dict[str, dict[str, list[tuple[str, list[str]]]]] = {
    "shared/event-store/src/dynamodb/mod.rs": {
        "get_item": [("EVENTS_TABLE", ["GetItem"]), ("IDEMPOTENCY_TABLE", ["GetItem"])],
        "query": [("EVENTS_TABLE", ["Query"])],
        "update_item": [("EVENTS_TABLE", ["UpdateItem"])],
        "transact_write_items": [
            ("EVENTS_TABLE", ["PutItem", "UpdateItem"]),
            ("IDEMPOTENCY_TABLE", ["PutItem"]),
        ],
        "describe_table": [("EVENTS_TABLE", ["DescribeTable"]), ("IDEMPOTENCY_TABLE", ["DescribeTable"])],
        # `EventStore::scan_events`: operators' commands that visit every stream (`quotes
        # archive backfill`), never a service.
        "scan": [],
        # `SnapshotStore::save_snapshot`: a quote's snapshot, an item of the events table.
        "put_item": [("EVENTS_TABLE", ["PutItem"])],
    },
    "shared/event-store/src/dynamodb/schema.rs": {"describe_table": []},
    "shared/event-relay/src/sink.rs": {
        "put_records": [("EVENT_STREAM", ["PutRecords"])],
        "describe_stream_summary": [("EVENT_STREAM", ["DescribeStreamSummary"])],
    },
    "shared/event-relay/src/dead_letter.rs": {
        "put_item": [("RELAY_DEAD_LETTER_TABLE", ["PutItem"])],
        # `RelayDeadLetters::list`: event-source's operations view (and `quotes
        # relay-dead-letters`); the consumers' relays never list (NOT_REACHED).
        "scan": [("RELAY_DEAD_LETTER_TABLE", ["Scan"])],
        # The table's creation (`quotes bootstrap`), not the services.
        "describe_table": [],
    },
    # A consumer's own lease table (LEASE_TABLE), and every application's that event-source's
    # operations view reads (OPS_APPLICATIONS; it only lists them: NOT_REACHED).
    "shared/kinesis-consumer/src/lease_table/dynamodb.rs": {
        op: [("LEASE_TABLE", [action]), ("OPS_APPLICATIONS", [action])]
        for op, action in [
            ("get_item", "GetItem"),
            ("put_item", "PutItem"),
            ("update_item", "UpdateItem"),
            ("delete_item", "DeleteItem"),
            ("scan", "Scan"),
        ]
    },
    "shared/kinesis-consumer/src/lease_table/dynamodb/schema.rs": {"describe_table": []},
    "shared/kinesis-consumer/src/dead_letter.rs": {
        "put_item": [("DEAD_LETTER_TABLE", ["PutItem"])],
        # `first_for_key` (is a partition key set aside?) on the index `by-key`; also
        # `DynamoDeadLetters::list` (operators' inspection, `quotes`).
        "query": [("DEAD_LETTER_TABLE", ["Query"])],
        "describe_table": [],
        # `DeadLetterStore::letters` (an application's letters): event-source's operations view
        # (and `quotes dlq`); the workers never list them (NOT_REACHED).
        "scan": [("DEAD_LETTER_TABLE", ["Scan"])],
        # `quotes dlq` (operators: redrive, purge), never a service: nothing removes a letter.
        "delete_item": [],
    },
    "shared/kinesis-consumer/src/source/polling.rs": {
        "get_records": [("EVENT_STREAM", ["GetRecords"])],
        "get_shard_iterator": [("EVENT_STREAM", ["GetShardIterator"])],
        "list_shards": [("EVENT_STREAM", ["ListShards"])],
    },
    "shared/kinesis-consumer/src/source/fanout.rs": {
        "describe_stream_summary": [("EVENT_STREAM", ["DescribeStreamSummary"])],
        "register_stream_consumer": [("EVENT_STREAM", ["RegisterStreamConsumer"])],
        "describe_stream_consumer": [("EFO_CONSUMER", ["DescribeStreamConsumer"])],
        "subscribe_to_shard": [("EFO_CONSUMER", ["SubscribeToShard"])],
    },
    # Also the tables named `<READ_MODEL_TABLE>-<suffix>` (`SUFFIXED_TABLES`, `HOME_ONLY`).
    "shared/read-model/src/dynamodb.rs": {
        # An upsert's read-back, and a control document (the routing, in the home table).
        "get_item": [("READ_MODEL_TABLE", ["GetItem"])],
        # An upsert, and a control document's change (operators' commands only).
        "put_item": [("READ_MODEL_TABLE", ["PutItem"])],
        "query": [("READ_MODEL_TABLE", ["Query"])],
        "describe_table": [("READ_MODEL_TABLE", ["DescribeTable"])],
        # `create_read_model_table` adds the `pending` index to an older table (`quotes
        # bootstrap`), never a service.
        "update_table": [],
    },
    # The archive (shared/archive): segments in S3, the manifest in DynamoDB.
    "shared/archive/src/s3.rs": {
        "put_object": [("ARCHIVE_BUCKET", ["PutObject"])],
        # `quote_archive::reader` (reading the archive back: the catch-up, `catch_up_calls`), not
        # the archiver: see NOT_REACHED.
        "get_object": [("ARCHIVE_BUCKET", ["GetObject"])],
        "list_objects_v2": [("ARCHIVE_BUCKET", ["ListBucket"])],
        "delete_object": [("ARCHIVE_BUCKET", ["DeleteObject"])],
        # `create_bucket` (`quotes bootstrap`) asks first whether the bucket exists.
        "head_bucket": [],
    },
    "shared/archive/src/dynamodb.rs": {
        "get_item": [("ARCHIVE_MANIFEST_TABLE", ["GetItem"])],
        "update_item": [("ARCHIVE_MANIFEST_TABLE", ["UpdateItem"])],
        "query": [("ARCHIVE_MANIFEST_TABLE", ["Query"])],
        # A commit: the segment's item (Put) and the shard head's update, in one transaction.
        "transact_write_items": [("ARCHIVE_MANIFEST_TABLE", ["PutItem", "UpdateItem"])],
        # `create_manifest_table` (`quotes bootstrap`).
        "describe_table": [],
    },
    "services/notifier/src/ledger.rs": {
        "get_item": [("NOTIFICATIONS_TABLE", ["GetItem"])],
        "put_item": [("NOTIFICATIONS_TABLE", ["PutItem"])],
        "update_item": [("NOTIFICATIONS_TABLE", ["UpdateItem"])],
        # `DynamoNotificationLedger::ready` (the notifier's /readyz).
        "describe_table": [("NOTIFICATIONS_TABLE", ["DescribeTable"])],
    },
    # `quotes run` describes every table and the stream a service needs before starting it
    # (only those the service reads count, see `aws_calls`).
    "services/quotes/src/platform/resources.rs": {
        "describe_table": [
            (variable, ["DescribeTable"])
            for variable in [
                "EVENTS_TABLE",
                "IDEMPOTENCY_TABLE",
                "READ_MODEL_TABLE",
                "DEAD_LETTER_TABLE",
                "RELAY_DEAD_LETTER_TABLE",
                "NOTIFICATIONS_TABLE",
                "ARCHIVE_MANIFEST_TABLE",
                "LEASE_TABLE",
            ]
        ],
        "describe_stream_summary": [("EVENT_STREAM", ["DescribeStreamSummary"])],
        # HeadBucket is authorised as s3:ListBucket.
        "head_bucket": [("ARCHIVE_BUCKET", ["s3:ListBucket"])],
    },
    "services/notifier/src/senders.rs": {
        "send_email": [("ses", ["ses:SendEmail"])],
        "publish": [("sns", ["sns:Publish"])],
    },
}

#: What running a Kinesis consumer takes (a worker, a record source, rewinding or coordinating
#: leases): a service whose entry code names none of it runs no consumer of the stream.
WORKER = r"\bWorker(?:Config)?\b|kinesis_consumer::(?:worker|source|rewind|coordination)\b|ProcessorFactory"

#: Calls a linked crate can make that a service never reaches: (services, resource, actions,
#: pattern, reason). The proof is that `pattern` does not occur in the service's entry code
#: (its own crate, plus `quote-pipeline` for the consumers), the only code that could reach
#: those calls; the check fails when it starts to occur.
NOT_REACHED = [
    (
        ["event-source"],
        "READ_MODEL_TABLE",
        ["dynamodb:PutItem"],
        r"\.upsert\(|\.write_control\(",
        "event-source only reads the read model; the projector writes it (and operators' commands the routing document)",
    ),
    (
        ["projector"],
        "READ_MODEL_TABLE",
        ["dynamodb:Query"],
        r"list_by_customer\(|pending_before\(",
        "the projector writes summaries and reads them back by key; listing is event-source's, the pending quotes fulfillment's",
    ),
    (
        ["fulfillment"],
        "READ_MODEL_TABLE",
        ["dynamodb:PutItem"],
        r"\.upsert\(|\.write_control\(",
        "fulfillment only lists the pending quotes (`pending_before`) and reads the routing; the projector writes the read model (and operators' commands the routing document)",
    ),
    (
        CONSUMERS,
        "IDEMPOTENCY_TABLE",
        ["dynamodb:GetItem", "dynamodb:PutItem"],
        r"idempotency:\s*Some|idempotency_record\(",
        "handlers append without idempotency records (`idempotency: None`)",
    ),
    (
        CONSUMERS,
        "EVENTS_TABLE",
        ["dynamodb:DescribeTable"],
        r"store\s*\.ping\(",
        "only event-source's readiness probe pings the event store (DescribeTable)",
    ),
    (
        CONSUMERS,
        "IDEMPOTENCY_TABLE",
        ["dynamodb:DescribeTable"],
        r"store\s*\.ping\(",
        "only event-source's readiness probe pings the event store (DescribeTable)",
    ),
    (
        RECORD_SERVICES,
        "EVENT_STREAM",
        ["kinesis:PutRecords"],
        r"Relay::new|KinesisSink::new",
        "a record service publishes nothing: the relay is built only for `Consumption::Events`",
    ),
    (
        CONSUMERS,
        "DEAD_LETTER_TABLE",
        ["dynamodb:Scan"],
        r"\.letters\(",
        "a worker sets records aside (PutItem) and looks keys up on `by-key` (Query); only"
        " event-source's operations view (and `quotes dlq`) lists an application's letters",
    ),
    (
        CONSUMERS,
        "RELAY_DEAD_LETTER_TABLE",
        ["dynamodb:Scan"],
        r"dead_letters\s*\.\s*list\(",
        "a relay sets records aside (PutItem) and never lists them; only event-source's operations"
        " view (and `quotes relay-dead-letters`) does",
    ),
    (
        ["event-source"],
        "EVENT_STREAM",
        ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:RegisterStreamConsumer"],
        WORKER,
        "event-source consumes no stream: it links the consumer library for the operations view's"
        " reads of the lease tables and dead letters only",
    ),
    (
        ["event-source"],
        "EFO_CONSUMER",
        ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"],
        WORKER,
        "event-source consumes no stream (no enhanced fan-out consumer)",
    ),
    (
        ["event-source"],
        "DEAD_LETTER_TABLE",
        ["dynamodb:PutItem", "dynamodb:Query"],
        rf"{WORKER}|(?<!relay_)dead_letters\s*\.\s*(?:put|first_for_key|list)\(",
        "the operations view only lists each application's letters (`letters`, a Scan); the"
        " consumers' workers set records aside (PutItem) and look keys up on `by-key` (Query)",
    ),
    (
        ["event-source"],
        "OPS_APPLICATIONS",
        ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        rf"{WORKER}|\.leases\s*\.\s*(?!list\s*\(|clone\s*\()\w+\s*\(",
        "the operations view only lists each application's leases (`leases.list()`, a Scan); the"
        " consumers' workers take, renew, checkpoint and delete them",
    ),
    (
        RECORD_SERVICES,
        "ARCHIVE_BUCKET",
        ["s3:GetObject"],
        r"reader::|read_shard\(|read_segment\(|objects\s*\.get\(",
        "the archiver never reads a segment back (`quote_archive::reader` is for readers of the archive)",
    ),
]

#: Table actions a service reaches on the table's indexes only, never on the table itself:
#: (services, resource, actions, pattern, reason). The proof, as for `NOT_REACHED`, is that
#: `pattern` (every call that does them on the table itself) does not occur in the service's
#: entry code; the check fails when it starts to occur. `aws_calls` keeps the actions (the
#: service needs them); `index_only_calls` says they are granted on `<table>/index/*` only.
INDEX_ONLY = [
    (
        ["fulfillment"],
        "READ_MODEL_TABLE",
        ["dynamodb:Query"],
        r"list_by_customer\(",
        "fulfillment queries the `pending` index (`pending_before`, keys only); only `list_by_customer` queries the table itself",
    ),
]

#: Table actions no service calls on the table's indexes, only on the table itself: (resource,
#: action, file, operation, reason). The proof: every `.<operation>()` builder in `file` sets no
#: `index_name`, and no other file's calls (`CALLS`) give `action` on `resource`; the check fails
#: when either changes. `table_only_calls` says which a service calls; a deployment grants them on
#: the table and not on `<table>/index/*`.
TABLE_ONLY = [
    (
        "DEAD_LETTER_TABLE",
        "dynamodb:Scan",
        "shared/kinesis-consumer/src/dead_letter.rs",
        "scan",
        "`DeadLetterStore::letters` scans the table itself (filter on `source`); only the lookups by"
        " partition key (`first_for_key`, Query) use the `by-key` index",
    ),
]

#: Table variables whose services also use the tables named `<name>-<suffix>`, with what they
#: are. The read model's blue/green tables: `quotes rebuild read-model --into TABLE` rebuilds it
#: into a new table (the CLI refuses a TABLE not named `<READ_MODEL_TABLE>-<suffix>`), and the
#: services follow the routing document in the home table, the one READ_MODEL_TABLE names
#: (`shared/read-model/src/routing.rs`: `active` for reads and writes, `standby` for writes), so
#: they reach any such table without a restart. A deployment grants them as `<arn>-*` and
#: `<arn>-*/index/*` (never `<arn>*`, which would match `customer-quotes2` too).
SUFFIXED_TABLES = {
    "READ_MODEL_TABLE": "the read model's blue/green tables (`quotes rebuild read-model --into <READ_MODEL_TABLE>-<suffix>`, `quotes read-model switch`)",
}

#: Table actions a service reaches on the home table only, never on its suffixed tables
#: (`SUFFIXED_TABLES`): (services, resource, actions, pattern, reason). The proof, as for
#: `NOT_REACHED`, is that `pattern` (every call that does them on another table) does not occur
#: in the service's entry code; the check fails when it starts to occur.
HOME_ONLY = [
    (
        ["event-source", "fulfillment"],
        "READ_MODEL_TABLE",
        ["dynamodb:GetItem"],
        r"\.upsert\(|\.read_control\(",
        "their only GetItem is the routing document's (`RoutingControl::load`, always in the home"
        " table); GetItem on the routed tables is the upsert's read-back, the projector's",
    ),
]

#: Crates whose code decides which calls a consumer service reaches, besides its own. For a
#: record service, the event handlers' arm of `AwsConsumer::connect` is left out of it (it
#: never runs that arm: `record_service_proof`).
ENTRY_CRATES = {"quote-pipeline"}

#: Where `AwsConsumer::connect` builds an event handler's or a record service's worker.
PIPELINE_SERVICE = "shared/pipeline/src/service.rs"

#: Where `quotes run` wires each consumer service on AWS and lists the resources it checks.
RUN_AWS = "services/quotes/src/platform/aws.rs"

#: The AWS SDK crates the services use, and the IAM service prefix of their operations.
SDK_CRATES = {
    "aws-sdk-dynamodb": "dynamodb",
    "aws-sdk-kinesis": "kinesis",
    "aws-sdk-s3": "s3",
    "aws-sdk-sesv2": "ses",
    "aws-sdk-sns": "sns",
}


@functools.cache
def host_triple() -> str:
    """The target triple of the host's Rust toolchain (`rustc -vV`)."""
    out = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.removeprefix("host: ").strip()
    raise ValueError("rustc -vV printed no host triple")


@functools.cache
def sdk_operation_names() -> dict[str, set[str]]:
    """Operation (snake case, as the SDK's client method) → IAM prefixes of the SDKs that have it,
    read from the SDK crates' `src/operation/` folders."""
    # Only the host's packages: a Linux build never downloads Windows-only crates of the
    # lockfile (`anstyle-wincon`, …), and `--offline` would fail on a fresh cargo cache without
    # the filter.
    out = subprocess.run(
        [
            "cargo",
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--locked",
            "--filter-platform",
            host_triple(),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    operations: dict[str, set[str]] = {}
    for package in json.loads(out)["packages"]:
        prefix = SDK_CRATES.get(package["name"])
        if prefix is None:
            continue
        folder = Path(package["manifest_path"]).parent / "src" / "operation"
        for entry in folder.iterdir():
            if entry.is_dir():
                operations.setdefault(entry.name, set()).add(prefix)
    if not operations:
        raise ValueError("no AWS SDK operations found (are the SDK crates downloaded?)")
    return operations


#: A fluent-builder start: `.<operation>()` followed by a setter or `.send()` (not `.await`,
#: which is how our own traits' methods of the same name are called).
_BUILDER_START = re.compile(r"\.([a-z][a-z0-9_]*)\(\)\s*\.([a-z][a-z0-9_]*)\(")


def sdk_operations(text: str) -> set[str]:
    """SDK operations called in `text` (fluent builders of the SDK clients)."""
    known = sdk_operation_names()
    return {m.group(1) for m in _BUILDER_START.finditer(text) if m.group(1) in known}


def _aws_action(operation: str, action: str) -> str:
    """`action` with its IAM prefix (the prefix of the SDK that has `operation`)."""
    if ":" in action:
        return action
    prefixes = sdk_operation_names()[operation]
    if len(prefixes) != 1:
        raise ValueError(f"{operation} exists in several SDKs: write its actions with a prefix")
    return f"{next(iter(prefixes))}:{action}"


def aws_calls(service: str, initial_position: str | None = None) -> dict[str, set[str]]:
    """Resource key → IAM actions `service`'s code can call. Keys are the variables naming a
    resource (`EVENTS_TABLE`, `LEASE_TABLE`, `EVENT_STREAM`, …), `EFO_CONSUMER` for the
    enhanced fan-out consumer, `ses` and `sns`. With `initial_position` (the service's
    CONSUMER_INITIAL_POSITION in the deployment), also what it calls only with that position
    (`catch_up_calls` with `ARCHIVE`)."""
    if initial_position is not None:
        grants = {resource: set(actions) for resource, actions in aws_calls(service).items()}
        if catches_up(service, initial_position):
            for resource, actions in catch_up_calls().items():
                grants.setdefault(resource, set()).update(actions)
        return grants
    grants: dict[str, set[str]] = {}
    for path, text in sources_of(service).items():
        operations = sdk_operations(text) - PROVISIONING
        if not operations:
            continue
        table = CALLS.get(path)
        if table is None:
            raise ValueError(f"{path} calls AWS ({sorted(operations)}) but CALLS does not cover it")
        unknown = operations - set(table)
        if unknown:
            raise ValueError(f"{path}: operations {sorted(unknown)} are missing from CALLS")
        for operation in operations:
            for resource, actions in table[operation]:
                if (resource in RESOURCE_VARIABLES or resource in TABLE_LIST_VARIABLES) and resource not in env_reads(service):
                    continue
                if path in RUN_FILES and not_checked_by_run(service, resource):
                    continue
                grants.setdefault(resource, set()).update(_aws_action(operation, a) for a in actions)
    entry = _entry_text(service)
    for services, resource, actions, pattern, _reason in NOT_REACHED:
        if service not in services:
            continue
        if re.search(pattern, entry):
            raise ValueError(f"{service} now matches {pattern!r}: it may call {actions} on {resource}")
        grants.get(resource, set()).difference_update(actions)
    return {resource: actions for resource, actions in grants.items() if actions}


#: Resources a service reads although `quotes run` does not check them before starting it
#: (`RUN_FILES` describes only what `AwsPlan::resources` lists): (services, resource, pattern,
#: reason). The proof is that `pattern` (every way the service's part of `AwsPlan::resources`
#: could name the resource) does not occur there; the check fails when it starts to occur.
NOT_CHECKED_BY_RUN = [
    (
        ["event-source"],
        "DEAD_LETTER_TABLE",
        r"(?<!relay\.)dead_letter_table",
        "the operations view reads the consumers' dead letters when someone watches it; the API"
        " runs without them (the view shows the error), so `quotes run` checks only the relay's",
    ),
]


def _run_checks(service: str) -> str:
    """The part of `AwsPlan::resources` (`RUN_AWS`) that lists what `quotes run` checks for
    `service` before starting it (only event-source's is needed: `if let Some(config) =
    &self.event_source { … }`)."""
    if service != "event-source":
        raise ValueError(f"NOT_CHECKED_BY_RUN: finding {service}'s part of AwsPlan::resources is not implemented")
    aws = _source(RUN_AWS)
    start = aws.find("pub fn resources(")
    match = re.compile(r"if let Some\(config\) = &self\.event_source \{").search(aws, start) if start >= 0 else None
    if match is None:
        raise ValueError(f"{RUN_AWS}: no `if let Some(config) = &self.event_source {{` in AwsPlan::resources")
    return _block_after(aws, match.start())


def not_checked_by_run(service: str, resource: str) -> bool:
    """True when `NOT_CHECKED_BY_RUN` proves that `quotes run SERVICE` does not check `resource`
    before starting (raises `ValueError` when the proof fails)."""
    for services, unchecked, pattern, _reason in NOT_CHECKED_BY_RUN:
        if service in services and unchecked == resource:
            if re.search(pattern, _run_checks(service)):
                raise ValueError(f"{RUN_AWS}: `quotes run {service}` now checks {resource} (matches {pattern!r})")
            return True
    return False


def index_only_calls(service: str) -> dict[str, set[str]]:
    """Resource key → the actions of `aws_calls(service)` on it that the service's code does on
    the table's indexes only (`INDEX_ONLY`), so that the table itself needs no grant for them."""
    calls = aws_calls(service)
    entry = _entry_text(service)
    found: dict[str, set[str]] = {}
    for services, resource, actions, pattern, _reason in INDEX_ONLY:
        if service not in services:
            continue
        if re.search(pattern, entry):
            raise ValueError(f"{service} now matches {pattern!r}: it may call {actions} on {resource} itself, not only on its indexes")
        reached = calls.get(resource, set()) & set(actions)
        if reached:
            found.setdefault(resource, set()).update(reached)
    return found


def _builders(text: str, operation: str) -> list[str]:
    """Each `.<operation>()` builder chain in `text`, up to its `.send()` (or the end)."""
    chains = []
    for match in re.finditer(rf"\.{operation}\(\)\s*\.", text):
        end = text.find(".send()", match.end())
        chains.append(text[match.start() : end if end >= 0 else len(text)])
    return chains


@functools.cache
def _table_only_proof(resource: str, action: str, path: str, operation: str) -> None:
    """Proves a `TABLE_ONLY` entry, or raises `ValueError`."""
    chains = _builders(_source(path), operation)
    if not chains:
        raise ValueError(f"{path}: no .{operation}() builder: update TABLE_ONLY")
    if any("index_name" in chain for chain in chains):
        raise ValueError(f"{path}: a .{operation}() builder sets index_name: {action} on {resource} reaches its indexes")
    for other, table in CALLS.items():
        for other_operation, grants in table.items():
            if (other, other_operation) == (path, operation):
                continue
            for granted, actions in grants:
                if granted == resource and any(_aws_action(other_operation, a) == action for a in actions):
                    raise ValueError(f"{other}: {other_operation} also gives {action} on {resource}: update TABLE_ONLY")


def table_only_calls(service: str) -> dict[str, set[str]]:
    """Resource key → the actions of `aws_calls(service)` on it that the code calls on the table
    itself only, never on its indexes (`TABLE_ONLY`)."""
    calls = aws_calls(service)
    found: dict[str, set[str]] = {}
    for resource, action, path, operation, _reason in TABLE_ONLY:
        if action in calls.get(resource, set()):
            _table_only_proof(resource, action, path, operation)
            found.setdefault(resource, set()).add(action)
    return found


def suffixed_calls(service: str) -> dict[str, set[str]]:
    """Resource key (of `SUFFIXED_TABLES`) → the actions of `aws_calls(service)` on it that the
    service's code also calls on the tables named `<name>-<suffix>`: all of them but those
    `HOME_ONLY` proves it calls on the home table only."""
    calls = aws_calls(service)
    entry = _entry_text(service)
    found = {resource: set(calls[resource]) for resource in SUFFIXED_TABLES if resource in calls}
    for services, resource, actions, pattern, _reason in HOME_ONLY:
        if service not in services or resource not in found:
            continue
        if re.search(pattern, entry):
            raise ValueError(f"{service} now matches {pattern!r}: it may call {actions} on the tables named <{resource}>-<suffix>")
        found[resource].difference_update(actions)
    return {resource: actions for resource, actions in found.items() if actions}


def _entry_crates(service: str) -> list[str]:
    own = package_of(service)
    return [own, *sorted(ENTRY_CRATES & set(crates_of(service)))]


def _crate_prefix(crate: str) -> str:
    directory = _workspace()[crate]["dir"]
    return directory.relative_to(ROOT).as_posix() + "/"


def _entry_text(service: str) -> str:
    """The code that decides which calls `service` reaches: its own crate and the entry crates
    it runs (for a record service without the event handlers' arm of `AwsConsumer::connect`,
    and without its crate's `OPERATOR_MODULES`, once `operator_module_proof` holds)."""
    parts = []
    sources = sources_of(service)
    for path, text in sources.items():
        if not any(path.startswith(_crate_prefix(crate)) for crate in _entry_crates(service)):
            continue
        if path in OPERATOR_MODULES:
            operator_module_proof(service, path)
            continue
        if service in RECORD_SERVICES and path == PIPELINE_SERVICE:
            events, _ = _consumption_arms(text)
            text = text.replace(events, "")
        parts.append(text)
    return "\n".join(parts)


#: Modules of a service's crate that only operators' commands run (`quotes …`, from the
#: `quotes` crate), never `quotes run SERVICE`: file → what runs it. They are left out of the
#: service's entry code (`_entry_text`); `operator_module_proof` shows the service never reaches
#: them.
OPERATOR_MODULES = {
    "services/archiver/src/backfill.rs": (
        "`quotes archive backfill` (services/quotes/src/archive.rs): it reads segments back"
        " (`quote_archive::reader`) to resume; the archiver itself never does"
    ),
}


def operator_module_proof(service: str, path: str) -> None:
    """Proves that `quotes run SERVICE` never reaches the operators' module `path`, or raises
    `ValueError`: no other file of the service's entry code refers to the module beyond
    declaring it (`pub mod NAME;`), and neither does `quotes run`'s wiring (`RUN_AWS`)."""
    module = Path(path).stem
    declaration = re.compile(rf"^\s*pub\s+mod\s+{module}\s*;", re.MULTILINE)
    use = re.compile(rf"\b{module}\s*::|\buse\s+[\w:]*\{{[^}}]*\b{module}\b")
    for other, text in sources_of(service).items():
        if other == path or not any(other.startswith(_crate_prefix(crate)) for crate in _entry_crates(service)):
            continue
        if use.search(declaration.sub("", text)):
            raise ValueError(f"{other} refers to {module}: {service} may run {path}, which OPERATOR_MODULES says only operators run")
    if re.search(rf"\b{module}\b", _strip_tests((ROOT / RUN_AWS).read_text())):
        raise ValueError(f"{RUN_AWS} refers to {module}: `quotes run {service}` may run {path}")


def _block_after(text: str, start: int) -> str:
    """The `{ … }` block that opens at or after `start`, braces included."""
    opening = text.index("{", start)
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[opening : index + 1]
    raise ValueError("unbalanced braces")


def _consumption_arms(pipeline: str) -> tuple[str, str]:
    """The `Consumption::Events(…) => { … }` and `Consumption::Records(…) => { … }` arms of
    `AwsConsumer::connect`."""
    connect = pipeline.find("pub async fn connect(")
    arms = []
    for variant in ("Events", "Records"):
        match = re.compile(rf"Consumption::{variant}\(\w+\)\s*=>\s*\{{").search(pipeline, connect)
        if connect < 0 or match is None:
            raise ValueError(f"{PIPELINE_SERVICE}: no `Consumption::{variant}(…) => {{` arm in AwsConsumer::connect")
        arms.append(_block_after(pipeline, match.start()))
    return arms[0], arms[1]


@functools.cache
def record_service_proof(service: str) -> None:
    """Proves what `UNUSED_BY_RECORD_SERVICES` says of `service`, or raises `ValueError`:

    - its crate implements `RecordService` (and not `EventHandler`), and `quotes run` wires it as
      `Consumption::Records`, checking its own resources and none of the event store's or the
      dead letters' before it starts;
    - the record services' arm of `AwsConsumer::connect` makes the processors checkpoint by
      themselves (`CheckpointPolicy::MANUAL`) and retry every failure (`RetryForever`), and the
      pipeline outside the event handlers' arm uses no event store, relay or dead letters."""
    own = "\n".join(text for path, text in sources_of(service).items() if path.startswith(_crate_prefix(package_of(service))))
    if not re.search(r"impl\s+[\w:]*RecordService\s+for\s", own) or re.search(r"impl\s+[\w:]*EventHandler\s+for\s", own):
        raise ValueError(f"{service} is no longer a record service (RecordService, not EventHandler): update RECORD_SERVICES")
    aws = _strip_tests((ROOT / RUN_AWS).read_text())
    crate = package_of(service).replace("-", "_")
    if not re.search(rf"Consumption::Records\(\s*Arc::new\(\s*{crate}::", aws):
        raise ValueError(f"{RUN_AWS} no longer wires {service} as Consumption::Records")
    variant = "".join(part.capitalize() for part in service.split("-"))
    own_resources = re.search(rf"if let Handler::{variant}\(\w+\) = &consumer\.handler \{{.*?continue;", aws, re.S)
    events_table = aws.find("application.tables.events")
    if own_resources is None or not 0 <= own_resources.end() < events_table:
        raise ValueError(f"{RUN_AWS}: `quotes run` may check the event store's tables for {service} before starting it")
    pipeline = _strip_tests((ROOT / PIPELINE_SERVICE).read_text())
    events, records = _consumption_arms(pipeline)
    for needed in ("CheckpointPolicy::MANUAL", "FailurePolicy::RetryForever"):
        if needed not in records:
            raise ValueError(f"{PIPELINE_SERVICE}: the record services' arm no longer sets {needed}")
    outside = pipeline.replace(events, "")
    used = re.findall(r"settings\.(?:tables|relay|dead_letter_table|max_attempts)\b|DynamoEventStore::new|DynamoDeadLetters::new|Relay::new", outside)
    if used:
        raise ValueError(f"{PIPELINE_SERVICE}: {sorted(set(used))} outside the event handlers' arm: a record service may use them")


# ---------------------------------------------------------------------------------------------
# Catch-up from the archive (CONSUMER_INITIAL_POSITION=ARCHIVE)
# ---------------------------------------------------------------------------------------------

#: Where CONSUMER_INITIAL_POSITION is parsed and turned into the consumer's catch-up settings
#: (`ConsumerParts::config`: `StartFrom::Archive` → `CatchUp { … }` from the archive's settings).
CONSUMER_SETTINGS = "services/quotes/src/settings/consumer.rs"

#: Where the archive's location is declared (`ArchiveStorageSettings`: field → variable).
ARCHIVE_SETTINGS = "services/quotes/src/settings/archive.rs"

#: The catch-up's record source (`ArchiveSource`), and the reader functions it calls.
CATCH_UP_SOURCE = "shared/archive/src/catch_up.rs"
ARCHIVE_READER = "shared/archive/src/reader.rs"

#: The archive's ports as `AwsConsumer::connect` builds them for the catch-up: the name of the
#: field the source holds → (the port's trait, the file declaring it, the AWS adapter, its file).
ARCHIVE_PORTS = {
    "manifest": ("Manifest", "shared/archive/src/manifest.rs", "DynamoManifest", "shared/archive/src/dynamodb.rs"),
    "objects": ("ObjectStore", "shared/archive/src/objects.rs", "S3Objects", "shared/archive/src/s3.rs"),
}

#: Consumer services a deployment never starts with CONSUMER_INITIAL_POSITION=ARCHIVE although
#: their code would honour it, with the reason (Terraform leaves the archiver's position unset
#: then, so it keeps the code's default).
NO_CATCH_UP = {
    "archiver": "it writes the archive, so it starts at TRIM_HORIZON (the code's default) and never"
    " reads a segment back (NOT_REACHED); catching up from its own archive would need GetObject",
}


def _source(path: str) -> str:
    return _strip_tests((ROOT / path).read_text())


@functools.cache
def archive_position() -> str:
    """The CONSUMER_INITIAL_POSITION value that makes a consumer catch up from the archive, as
    `start_from` parses it (`"ARCHIVE" => Ok(StartFrom::Archive)`)."""
    match = re.search(r'"([A-Z_]+)"\s*=>\s*Ok\(StartFrom::Archive\)', _source(CONSUMER_SETTINGS))
    if match is None:
        raise ValueError(f"{CONSUMER_SETTINGS}: no value parses as StartFrom::Archive")
    return match.group(1)


def catches_up(service: str, initial_position: str | None) -> bool:
    """True when `service`, deployed with CONSUMER_INITIAL_POSITION=`initial_position`, reads
    the archive before the stream: a consumer service (not one of `NO_CATCH_UP`) with the
    archive's position."""
    return (
        initial_position == archive_position()
        and service in CONSUMERS
        and service not in NO_CATCH_UP
        and "CONSUMER_INITIAL_POSITION" in env_reads(service)
    )


@functools.cache
def _catch_up_fields() -> dict[str, str]:
    """`CatchUp` field → the variable it is read from (`StartFrom::Archive => { … CatchUp {
    bucket: self.archive.archive_bucket.clone(), … } }` and `ArchiveStorageSettings`'s
    `#[arg(…, env = "ARCHIVE_BUCKET", …)] pub archive_bucket`)."""
    consumer = _source(CONSUMER_SETTINGS)
    arm = re.search(r"StartFrom::Archive\s*=>\s*\{", consumer)
    if arm is None:
        raise ValueError(f"{CONSUMER_SETTINGS}: no `StartFrom::Archive => {{` arm")
    block = _block_after(consumer, arm.start())
    if "CatchUp" not in block:
        raise ValueError(f"{CONSUMER_SETTINGS}: the StartFrom::Archive arm builds no CatchUp")
    declared = dict(
        (field, variable)
        for variable, field in re.findall(r'env\s*=\s*"(\w+)"[^\]]*\]\s*pub\s+(\w+)\s*:', _source(ARCHIVE_SETTINGS))
    )
    fields = {}
    for field, setting in re.findall(r"(\w+)\s*:\s*self\.archive\.(\w+)", block):
        if setting not in declared:
            raise ValueError(f"{CONSUMER_SETTINGS}: CatchUp.{field} comes from {setting}, which {ARCHIVE_SETTINGS} does not declare")
        fields[field] = declared[setting]
    if not fields:
        raise ValueError(f"{CONSUMER_SETTINGS}: the CatchUp of StartFrom::Archive reads no archive setting")
    return fields


@functools.cache
def catch_up_variables() -> frozenset[str]:
    """The variables a consumer reads only with CONSUMER_INITIAL_POSITION=ARCHIVE: the ones its
    `CatchUp` is built from (ARCHIVE_BUCKET, ARCHIVE_MANIFEST_TABLE; not ARCHIVE_PREFIX, which
    only the writers use: the reader takes each segment's key from the manifest)."""
    return frozenset(_catch_up_fields().values())


@functools.cache
def _catch_up_ports() -> dict[str, str]:
    """Port (a key of `ARCHIVE_PORTS`) → the variable naming its resource, from the catch-up's
    wiring in `AwsConsumer::connect` (`S3Objects::new(client, catch_up.bucket…)`,
    `DynamoManifest::new(client, catch_up.manifest_table…)`)."""
    pipeline = _source(PIPELINE_SERVICE)
    start = pipeline.find("ArchiveSource::new(")
    if start < 0:
        raise ValueError(f"{PIPELINE_SERVICE}: the consumers no longer build an ArchiveSource")
    fields = _catch_up_fields()
    ports = {}
    for port, (_trait, _declared, adapter, _file) in ARCHIVE_PORTS.items():
        match = re.compile(rf"{adapter}::new\(.*?,\s*catch_up\.(\w+)", re.S).search(pipeline, start)
        if match is None or match.group(1) not in fields:
            raise ValueError(f"{PIPELINE_SERVICE}: the catch-up's {adapter} is not built on a CatchUp field read from a setting")
        ports[port] = fields[match.group(1)]
    return ports


def _trait_methods(path: str, trait: str) -> set[str]:
    text = _source(path)
    match = re.search(rf"pub\s+trait\s+{trait}\b", text)
    if match is None:
        raise ValueError(f"{path}: no trait {trait}")
    return set(re.findall(r"\bfn\s+(\w+)", _block_after(text, match.start())))


def rust_functions(text: str) -> dict[str, list[str]]:
    """Function name → the bodies of the functions of that name in `text`."""
    bodies: dict[str, list[str]] = {}
    for match in re.finditer(r"\bfn\s+(\w+)\s*(?:<[^>]*>)?\s*\(", text):
        header_end = text.find("{", match.end())
        if text.find(";", match.end(), header_end) >= 0:
            continue  # a declaration without a body (a trait's)
        bodies.setdefault(match.group(1), []).append(_block_after(text, match.start()))
    return bodies


def reached_functions(roots: set[str], functions: dict[str, list[str]]) -> set[str]:
    """The functions of `functions` that `roots` (names) reach through calls, roots included."""
    reached: set[str] = set()
    pending = [name for name in roots if name in functions]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        for body in functions[name]:
            for callee in functions:
                if callee not in reached and re.search(rf"(?:\bself\s*\.\s*|(?<![.\w])){callee}\s*\(", body):
                    pending.append(callee)
    return reached


@functools.cache
def _catch_up_methods() -> dict[str, set[str]]:
    """Port → the methods of its trait the catch-up calls: in `CATCH_UP_SOURCE`, and in the
    functions of `ARCHIVE_READER` it calls (`read_segment` → `objects.get`)."""
    source = _source(CATCH_UP_SOURCE)
    reader = _source(ARCHIVE_READER)
    reader_functions = rust_functions(reader)
    used = {name for name in reader_functions if re.search(rf"(?<![.\w]){name}\s*\(", source)}
    texts = [source, *(body for name in reached_functions(used, reader_functions) for body in reader_functions[name])]
    methods: dict[str, set[str]] = {}
    for port, (trait, declared, _adapter, _file) in ARCHIVE_PORTS.items():
        known = _trait_methods(declared, trait)
        called = {m for text in texts for m in re.findall(rf"\b{port}\s*(?:\.as_ref\(\)\s*)?\.\s*(\w+)\s*\(", text)}
        # `read_segment(objects, …)`: the reader's parameter is named after the port too.
        methods[port] = called & known
    return methods


@functools.cache
def catch_up_calls() -> dict[str, set[str]]:
    """Resource variable → the IAM actions a consumer calls only with
    CONSUMER_INITIAL_POSITION=ARCHIVE: the SDK operations of the archive's AWS adapters that the
    catch-up's port methods reach (Query on the manifest, GetObject on the bucket), with the
    actions `CALLS` gives them. `quotes run` must not check the archive's resources for it
    (that would add DescribeTable and HeadBucket): proven on `AwsPlan::resources`."""
    aws = _source(RUN_AWS)
    start = aws.find("pub fn resources(")
    if start < 0:
        raise ValueError(f"{RUN_AWS}: no `AwsPlan::resources` (what `quotes run` checks before starting)")
    if re.search(r"catch_up", _block_after(aws, start)):
        raise ValueError(f"{RUN_AWS}: `quotes run` checks the catch-up's archive resources now: add their DescribeTable/HeadBucket to catch_up_calls")
    ports = _catch_up_ports()
    calls: dict[str, set[str]] = {}
    for port, methods in _catch_up_methods().items():
        _trait, _declared, _adapter, path = ARCHIVE_PORTS[port]
        text = _source(path)
        functions = rust_functions(text)
        missing = methods - set(functions)
        if missing:
            raise ValueError(f"{path}: {sorted(missing)} of the {port} port are not implemented here")
        for name in reached_functions(methods, functions):
            for body in functions[name]:
                for operation in sdk_operations(body):
                    for resource, actions in CALLS[path][operation]:
                        if resource != ports[port]:
                            raise ValueError(f"{path}: {operation} is attributed to {resource}, the catch-up's {port} is {ports[port]}")
                        calls.setdefault(resource, set()).update(_aws_action(operation, a) for a in actions)
    return calls
