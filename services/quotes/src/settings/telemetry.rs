//! Logs and traces: every command's (global arguments).

use clap::{Args, ValueEnum};
use quote_runtime::telemetry::{LogConfig, LogFormat};

use super::heading;
use super::parse::log_filter;

/// The values of `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatName {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// JSON lines with the trace and span ids (containers, log pipelines).
    Json,
}

/// How a process logs; logs go to stderr, stdout carries a command's output.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::TELEMETRY)]
pub struct TelemetrySettings {
    /// Log lines as text or JSON.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormatName::Text)]
    pub log_format: LogFormatName,
    /// What is logged, in `RUST_LOG` syntax (`info`, `warn,kinesis_consumer=debug`, …)
    /// [default: `info` for `quotes run`, `warn` for the other commands].
    #[arg(long = "log", global = true, env = "RUST_LOG", value_parser = log_filter)]
    pub rust_log: Option<String>,
    /// Which spans become OpenTelemetry spans, whatever is logged (`RUST_LOG` syntax).
    #[arg(long, global = true, env = "TRACES_FILTER", default_value = "info", value_parser = log_filter)]
    pub traces_filter: String,
}

impl TelemetrySettings {
    /// The logging configuration, logging at `default` unless `RUST_LOG` says otherwise.
    pub fn config(&self, default: &str) -> LogConfig {
        LogConfig {
            format: match self.log_format {
                LogFormatName::Text => LogFormat::Text,
                LogFormatName::Json => LogFormat::Json,
            },
            filter: self.rust_log.clone().unwrap_or_else(|| default.to_owned()),
            traces_filter: self.traces_filter.clone(),
        }
    }
}
