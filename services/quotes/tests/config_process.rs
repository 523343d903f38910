//! The binary refuses configurations that cannot be run safely (started as a process, as an
//! operator would).

use std::process::Command;

fn run_with(vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quotes"));
    command.arg("run");
    for name in [
        "AUTH_HS256_SECRET",
        "AUTH_JWKS_URL",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        command.env_remove(name);
    }
    command
        .env("BACKEND", "memory")
        // Not a port: were the configuration accepted, the process would still stop (exit 2)
        // rather than serve; the report lists every problem, this one too.
        .env("LISTEN_ADDR", "127.0.0.1:99999")
        .envs(vars.iter().copied());
    command.output().expect("run quotes run")
}

#[test]
fn jwks_without_issuer_and_audience_refuses_to_start() {
    let jwks = ("AUTH_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json");
    for vars in [
        vec![jwks],
        vec![jwks, ("AUTH_ISSUER", "https://issuer.test")],
        vec![jwks, ("AUTH_AUDIENCE", "quotes-api")],
    ] {
        let output = run_with(&vars);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{vars:?}: {stderr}");
        assert!(stderr.contains("LISTEN_ADDR"), "{stderr}");
        assert!(
            stderr.contains("AUTH_ISSUER") && stderr.contains("AUTH_AUDIENCE"),
            "{stderr}"
        );
    }
}
