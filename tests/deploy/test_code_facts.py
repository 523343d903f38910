"""Checks of the code side of the deployment checks (`code_facts`): that the scanner finds
what the code reads and calls, and that the variables recorded as required really are (the
binary refuses to start without them: `quotes run SERVICE`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import code_facts

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", code_facts.ROOT / "target")) / "debug"


def binary(name: str) -> Path:
    path = TARGET / name
    assert path.exists(), f"{path} is missing: build the workspace binaries first (cargo build --bins)"
    return path


def test_every_service_reads_the_shared_configuration():
    for service in code_facts.SERVICES:
        reads = code_facts.env_reads(service)
        for name in ["EVENT_STREAM", "LISTEN_ADDR", "OTEL_EXPORTER_OTLP_ENDPOINT", "LOG_FORMAT"]:
            assert name in reads, f"{service} should read {name}"
    for consumer in code_facts.CONSUMERS:
        reads = code_facts.env_reads(consumer)
        assert reads["LEASE_TABLE"].defaulted
        assert code_facts.default_names(consumer)["LEASE_TABLE"] == f"{consumer}-leases"
        if consumer in code_facts.RECORD_SERVICES:
            continue
        assert "EVENTS_TABLE" in reads and reads["EVENTS_TABLE"].required
        assert "DEAD_LETTER_TABLE" in reads and reads["DEAD_LETTER_TABLE"].required
    # The operations view names the consumers' dead-letter table too.
    assert code_facts.env_reads("event-source")["DEAD_LETTER_TABLE"].required


def test_a_record_service_uses_no_event_store_relay_or_dead_letters():
    """The archiver's settings groups parse the event store's and the dead letters' variables,
    but it never uses them (proven from the code by `record_service_proof`)."""
    assert code_facts.RECORD_SERVICES == ["archiver"]
    reads = code_facts.env_reads("archiver")
    assert not set(code_facts.UNUSED_BY_RECORD_SERVICES) & set(reads)
    assert "RELAY_DEAD_LETTER_TABLE" not in reads and "RELAY_STORE_CONCURRENCY" not in reads
    assert {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE", "EVENT_STREAM", "LEASE_TABLE"} <= {
        name for name, read in reads.items() if read.required
    }
    # The binary's own list still has them: that is what the proof is for.
    parsed = {s["variable"] for s in code_facts.settings() if "archiver" in s["services"]}
    assert set(code_facts.UNUSED_BY_RECORD_SERVICES) <= parsed
    code_facts.record_service_proof("archiver")


def test_defaults_agree_between_services_and_bootstrap():
    bootstrap = code_facts.default_names()
    for service in code_facts.SERVICES:
        for variable, name in code_facts.default_names(service).items():
            if variable == "LEASE_TABLE":
                assert code_facts.default_lease_tables()[service] == name
            else:
                assert bootstrap[variable] == name, (service, variable)


def test_calls_are_attributed_to_resources():
    assert code_facts.aws_calls("event-source") == {
        "EVENTS_TABLE": {
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        },
        "IDEMPOTENCY_TABLE": {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"},
        "READ_MODEL_TABLE": {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"},
        # The operations view lists the relay's dead letters (Scan) besides the relay's writes.
        "RELAY_DEAD_LETTER_TABLE": {"dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:Scan"},
        "EVENT_STREAM": {"kinesis:DescribeStreamSummary", "kinesis:PutRecords"},
        # The operations view: each watched application's lease table and the consumers' dead
        # letters, listed (Scan); `quotes run` checks neither, and no worker runs here.
        "OPS_APPLICATIONS": {"dynamodb:Scan"},
        "DEAD_LETTER_TABLE": {"dynamodb:Scan"},
    }
    # The dead letters are scanned on the table itself, never on its `by-key` index.
    assert code_facts.table_only_calls("event-source") == {"DEAD_LETTER_TABLE": {"dynamodb:Scan"}}
    assert code_facts.aws_calls("archiver") == {
        "EVENT_STREAM": {
            "kinesis:DescribeStreamSummary",
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
            "kinesis:RegisterStreamConsumer",
        },
        "EFO_CONSUMER": {"kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"},
        "LEASE_TABLE": {
            "dynamodb:DeleteItem",
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "dynamodb:UpdateItem",
        },
        # Commits are TransactWriteItems (PutItem + UpdateItem); `quotes run` describes the table.
        "ARCHIVE_MANIFEST_TABLE": {
            "dynamodb:DescribeTable",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        },
        # Never GetObject (the reader's); HeadBucket and ListObjectsV2 are s3:ListBucket.
        "ARCHIVE_BUCKET": {"s3:DeleteObject", "s3:ListBucket", "s3:PutObject"},
    }
    # The quote deadline: fulfillment describes the read model (`quotes run`) and queries its
    # `pending` index, never the table itself, and neither reads nor writes the quotes' items
    # (its GetItem is the routing document's).
    assert code_facts.aws_calls("fulfillment")["READ_MODEL_TABLE"] == {
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
    }
    assert code_facts.index_only_calls("fulfillment") == {"READ_MODEL_TABLE": {"dynamodb:Query"}}
    assert code_facts.index_only_calls("event-source") == {}
    # The read model's blue/green tables (`<READ_MODEL_TABLE>-<suffix>`): the routing document
    # is read in the home table only; the projector writes (and reads back) every table.
    assert code_facts.suffixed_calls("event-source") == {"READ_MODEL_TABLE": {"dynamodb:DescribeTable", "dynamodb:Query"}}
    assert code_facts.suffixed_calls("fulfillment") == {"READ_MODEL_TABLE": {"dynamodb:DescribeTable", "dynamodb:Query"}}
    assert code_facts.suffixed_calls("projector") == {
        "READ_MODEL_TABLE": {"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"}
    }
    assert code_facts.suffixed_calls("notifier") == {}
    notifier = code_facts.aws_calls("notifier")
    assert notifier["ses"] == {"ses:SendEmail"} and notifier["sns"] == {"sns:Publish"}
    assert "IDEMPOTENCY_TABLE" not in notifier
    for consumer in code_facts.CONSUMERS:
        calls = code_facts.aws_calls(consumer)
        assert {"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"} <= calls["EVENT_STREAM"]
        assert "dynamodb:UpdateItem" in calls["LEASE_TABLE"]
        # `quotes run` checks that the lease table and the stream exist before starting.
        assert "dynamodb:DescribeTable" in calls["LEASE_TABLE"]
        assert "kinesis:DescribeStreamSummary" in calls["EVENT_STREAM"]
        assert "OPS_APPLICATIONS" not in calls
        assert code_facts.table_only_calls(consumer) == {}
        if consumer in code_facts.RECORD_SERVICES:
            assert "DEAD_LETTER_TABLE" not in calls and "EVENTS_TABLE" not in calls
            continue
        assert calls["DEAD_LETTER_TABLE"] == {"dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:Query"}
        # A relay sets records aside; only the operations view lists them.
        assert calls["RELAY_DEAD_LETTER_TABLE"] == {"dynamodb:DescribeTable", "dynamodb:PutItem"}


def test_the_operations_view_reads_the_consumers_tables():
    """event-source reads DEAD_LETTER_TABLE (the Dead letters group, shared with every consumer
    service) and OPS_APPLICATIONS: by default every consumer service, each by `<name>-leases`
    (the tables `quotes bootstrap` creates); an entry may name its table (`name=table`)."""
    reads = code_facts.env_reads("event-source")
    assert reads["DEAD_LETTER_TABLE"].required
    assert code_facts.default_names("event-source")["DEAD_LETTER_TABLE"] == code_facts.default_names()["DEAD_LETTER_TABLE"]
    groups = {s["variable"]: s["group"] for s in code_facts.settings()}
    assert groups["DEAD_LETTER_TABLE"] == "Dead letters" and groups["OPS_APPLICATIONS"] == "API (event-source)"
    assert code_facts.ops_applications() == code_facts.default_lease_tables()
    assert list(code_facts.ops_applications()) == code_facts.CONSUMERS
    assert code_facts.ops_applications("projector=stg-projector-leases, notifier") == {
        "projector": "stg-projector-leases",
        "notifier": "notifier-leases",
    }
    with pytest.raises(ValueError):
        code_facts.ops_applications("projector,=x")
    assert code_facts.TABLE_LIST_VARIABLES == {"OPS_APPLICATIONS": "LEASE_TABLE"}
    # `quotes run event-source` checks the relay's dead letters, not the consumers'.
    assert code_facts.not_checked_by_run("event-source", "DEAD_LETTER_TABLE")
    assert not code_facts.not_checked_by_run("event-source", "RELAY_DEAD_LETTER_TABLE")


def test_catch_up_reads_the_archive_only_with_its_initial_position():
    """CONSUMER_INITIAL_POSITION=ARCHIVE: a consumer service reads the archive's bucket and
    manifest (named by ARCHIVE_BUCKET and ARCHIVE_MANIFEST_TABLE, never ARCHIVE_PREFIX: the
    segments' keys come from the manifest) with Query on the manifest (its shard heads and a
    shard's segments, consistent reads: no GetItem) and GetObject on the segments (it never
    lists the bucket), derived from the settings, the pipeline's wiring and the archive's
    adapters. Without that position, or for the archiver (`NO_CATCH_UP`), nothing changes."""
    assert code_facts.archive_position() == "ARCHIVE"
    assert code_facts.catch_up_variables() == {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE"}
    assert set(code_facts.DEPLOY_REQUIRED["catch-up"]) == code_facts.catch_up_variables()
    assert code_facts.catch_up_calls() == {
        "ARCHIVE_MANIFEST_TABLE": {"dynamodb:Query"},
        "ARCHIVE_BUCKET": {"s3:GetObject"},
    }
    readers = [s for s in code_facts.CONSUMERS if code_facts.catches_up(s, "ARCHIVE")]
    assert readers == ["vehicle-enricher", "driver-history", "fulfillment", "projector", "notifier"]
    assert not code_facts.catches_up("event-source", "ARCHIVE") and not code_facts.catches_up("archiver", "ARCHIVE")
    for service in code_facts.SERVICES:
        base = code_facts.env_reads(service)
        assert code_facts.env_reads(service, "TRIM_HORIZON") == base
        assert code_facts.aws_calls(service, "LATEST") == code_facts.aws_calls(service)
        archive = code_facts.env_reads(service, "ARCHIVE")
        calls = code_facts.aws_calls(service, "ARCHIVE")
        if service not in readers:
            assert archive == base and calls == code_facts.aws_calls(service), service
            continue
        # The binary's settings list the archive's variables for the archiver only.
        assert not {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE", "ARCHIVE_PREFIX"} & set(base), service
        assert set(archive) - set(base) == {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE"}, service
        assert archive["ARCHIVE_BUCKET"].required and archive["ARCHIVE_MANIFEST_TABLE"].required
        assert not {"ARCHIVE_BUCKET", "ARCHIVE_MANIFEST_TABLE"} & set(code_facts.aws_calls(service)), service
        assert {k: v for k, v in calls.items() if k.startswith("ARCHIVE_")} == code_facts.catch_up_calls(), service
        names = code_facts.default_names(service, "ARCHIVE")
        assert names["ARCHIVE_BUCKET"] == "quote-archive" and names["ARCHIVE_MANIFEST_TABLE"] == "quote-archive-manifest"


def test_the_catch_up_scanner_follows_the_ports_into_the_adapters():
    text = """
        impl Thing {
            async fn helper(&self) -> Result<(), E> {
                self.client.query().table_name(&self.table).send().await?;
                Ok(())
            }
        }
        impl Port for Thing {
            async fn listed(&self) -> Result<(), E> { self.helper().await }
            async fn written(&self) -> Result<(), E> {
                self.client.put_item().table_name(&self.table).send().await?;
                Ok(())
            }
        }
    """
    functions = code_facts.rust_functions(text)
    reached = code_facts.reached_functions({"listed"}, functions)
    assert reached == {"listed", "helper"}
    assert {op for name in reached for body in functions[name] for op in code_facts.sdk_operations(body)} == {"query"}


def test_the_scanner_sees_builders_but_not_our_traits():
    text = """
        let a = client.get_records().shard_iterator(i).send().await;
        let b = source.list_shards().await?;
        let c = client
            .update_item()
            .table_name(&t);
    """
    assert code_facts.sdk_operations(text) == {"get_records", "update_item"}


def run_without(service: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTEL_"))}
    for name in list(clean):
        if name in code_facts.env_reads(service):
            del clean[name]
    clean.update({"AWS_REGION": "us-east-1", "LISTEN_ADDR": "127.0.0.1:0", "RUST_LOG": "error"})
    clean.update(env)
    return subprocess.run(
        [binary("quotes"), "run", service], env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "service,name",
    sorted((s, n) for s, names in code_facts.CODE_REQUIRED.items() for n in names),
)
def test_a_required_variable_is_refused_when_missing(service, name):
    assert code_facts.env_reads(service)[name].required
    result = run_without(service, {})
    assert result.returncode != 0
    assert name in result.stderr + result.stdout


def test_event_source_on_aws_refuses_to_run_without_a_token_key():
    result = run_without("event-source", {})
    assert result.returncode != 0
    for group in code_facts.ONE_OF["event-source"]:
        for name in group:
            assert name in result.stderr + result.stdout


@pytest.mark.parametrize("service", ["event-source", "projector"])
def test_the_relay_settings_are_validated_in_every_process_with_a_relay(service):
    assert "RELAY_STORE_CONCURRENCY" in code_facts.env_reads(service)
    env = {"RELAY_STORE_CONCURRENCY": "0"}
    if service == "event-source":
        env["AUTH_HS256_SECRET"] = "deploy-check-secret-0123456789"
    result = run_without(service, env)
    assert result.returncode != 0
    assert "RELAY_STORE_CONCURRENCY" in result.stderr + result.stdout
