//! Settings seen from outside: every invalid one reported at once ([`parse`]), and the list of
//! every setting with its variable, default, meaning and the services that read it
//! ([`catalogue`], printed by `quotes settings`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command, CommandFactory, Parser};
use serde::Serialize;

use super::heading;
use crate::cli::Cli;
use crate::platform::Service;

/// Settings that cannot run, each with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSettings(pub Vec<String>);

impl fmt::Display for InvalidSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "invalid setting: {one}"),
            all => {
                write!(f, "{} invalid settings:", all.len())?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InvalidSettings {}

/// Exit status of settings that cannot run (as clap's usage errors).
pub const INVALID_SETTINGS_STATUS: u8 = 2;

/// Parses the command line and the environment. clap stops at the first value it cannot
/// parse; when that happens, every value of the chosen command's variables is checked, the
/// settings of `quotes run` are checked as if the invalid values had their defaults, and all
/// the problems are printed together before exiting with status 2.
pub fn parse_cli() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    let err = match Cli::try_parse_from(&args) {
        Ok(cli) => return cli,
        Err(err) => err,
    };
    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        err.exit()
    }
    let mut command = Cli::command();
    command.build();
    let found = invalid_env_values(&command, &args);
    if found.is_empty() {
        err.exit()
    }
    let reported = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => found.iter().any(|i| arg.starts_with(i.flag.as_str())),
        _ => false,
    };
    let mut problems = Vec::new();
    if !reported {
        problems.push(first_line(&err.to_string()));
    }
    let mut patched = args.clone();
    for invalid in &found {
        problems.push(invalid.problem.clone());
        if let Some(default) = &invalid.default {
            patched.push(OsString::from(format!("{}={default}", invalid.flag)));
        }
    }
    if let Ok(Cli {
        command: crate::cli::Command::Run(run),
        ..
    }) = Cli::try_parse_from(&patched)
    {
        if let Err(InvalidSettings(more)) = crate::platform::Plan::new(&run) {
            problems.extend(more);
        }
    }
    eprintln!("quotes: {}", InvalidSettings(problems));
    std::process::exit(i32::from(INVALID_SETTINGS_STATUS))
}

/// An environment value its argument refuses.
struct InvalidValue {
    /// The argument's flag (`--lease-duration-ms`).
    flag: String,
    /// Its default, if it has one.
    default: Option<String>,
    /// The variable and why its value is refused.
    problem: String,
}

/// The environment values of the command `args` chose that its arguments refuse. A variable
/// whose flag is on the command line is not read, so not checked.
fn invalid_env_values(root: &Command, args: &[OsString]) -> Vec<InvalidValue> {
    let mut command = root;
    for arg in args.iter().skip(1) {
        if let Some(sub) = arg.to_str().and_then(|a| command.find_subcommand(a)) {
            command = sub;
        }
    }
    let on_command_line = |long: &str| {
        args.iter().filter_map(|a| a.to_str()).any(|a| {
            a.strip_prefix("--")
                .is_some_and(|rest| rest == long || rest.starts_with(&format!("{long}=")))
        })
    };
    let mut found = Vec::new();
    for arg in command.get_arguments() {
        let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let Some(value) = std::env::var_os(variable).filter(|v| !v.is_empty()) else {
            continue;
        };
        if on_command_line(long) {
            continue;
        }
        // The argument alone, given the value on its command line: clap parses it exactly as
        // it would from the variable (delimiters, possible values, ranges).
        let probe = Command::new("probe")
            .no_binary_name(true)
            .arg(arg.clone().required(false).global(false));
        let mut flag = OsString::from(format!("--{long}="));
        flag.push(&value);
        if let Err(err) = probe.try_get_matches_from([flag]) {
            let variable = variable.to_string_lossy();
            found.push(InvalidValue {
                flag: format!("--{long}"),
                default: default_of(arg),
                problem: format!("{variable}: {}", reason(arg, &err)),
            });
        }
    }
    found
}

/// clap's reason, without the value when the argument is a secret.
fn reason(arg: &Arg, err: &clap::Error) -> String {
    if arg.is_hide_env_values_set() {
        return "invalid value (hidden: a secret)".to_owned();
    }
    first_line(&err.to_string())
}

/// The message of a clap error on one line, without its `error:` prefix and usage hints.
fn first_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .map(|line| line.strip_prefix("error: ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One setting, as `quotes settings` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The environment variable.
    pub variable: String,
    /// The command-line flag (`--events-table`).
    pub flag: String,
    /// The default, when there is one to write down (computed defaults are in `meaning`).
    pub default: Option<String>,
    /// What it means.
    pub meaning: String,
    /// Its group (help heading).
    pub group: String,
    /// A secret: its value is never printed.
    pub secret: bool,
    /// The commands that read it (`run`, `bootstrap`, `bench ingest`, …).
    pub commands: Vec<String>,
    /// The services of `quotes run` that read it.
    pub services: Vec<String>,
    /// The services that refuse to start without it.
    pub required_by: Vec<String>,
}

/// Settings a service refuses to start without (it has no default, by design).
pub const REQUIRED: [(&str, Service); 2] = [
    ("DRIVER_HISTORY_PROVIDER", Service::DriverHistory),
    ("NOTIFY_FROM_EMAIL", Service::Notifier),
];

/// The order of the groups in listings.
const GROUPS: [&str; 14] = [
    heading::PROCESS,
    heading::TELEMETRY,
    heading::EVENT_STORE,
    heading::READ_MODEL,
    heading::RELAY,
    heading::API,
    heading::CONSUMER,
    heading::DEAD_LETTERS,
    heading::VEHICLE_ENRICHER,
    heading::DRIVER_HISTORY,
    heading::FULFILLMENT,
    heading::NOTIFIER,
    heading::ARCHIVER,
    heading::BOOTSTRAP,
];

/// Every setting of every command of `quotes`, in group order.
pub fn catalogue() -> Vec<Setting> {
    let mut root = Cli::command();
    root.build();
    let mut by_variable: BTreeMap<String, Setting> = BTreeMap::new();
    collect(&root, "", &mut by_variable);
    let mut settings: Vec<Setting> = by_variable.into_values().collect();
    settings.sort_by_key(|s| {
        (
            GROUPS
                .iter()
                .position(|g| *g == s.group)
                .unwrap_or(GROUPS.len()),
            s.variable.clone(),
        )
    });
    settings
}

fn collect(command: &Command, path: &str, found: &mut BTreeMap<String, Setting>) {
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = if path.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{path} {}", sub.get_name())
        };
        for arg in sub.get_arguments() {
            let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let variable = variable.to_string_lossy().into_owned();
            let group = arg
                .get_help_heading()
                .unwrap_or(heading::PROCESS)
                .to_owned();
            let entry = found.entry(variable.clone()).or_insert_with(|| Setting {
                required_by: REQUIRED
                    .iter()
                    .filter(|(v, _)| *v == variable)
                    .map(|(_, s)| s.name().to_owned())
                    .collect(),
                variable,
                flag: format!("--{long}"),
                default: default_of(arg),
                meaning: meaning_of(arg),
                group: group.clone(),
                secret: arg.is_hide_env_values_set(),
                commands: Vec::new(),
                services: Vec::new(),
            });
            if !entry.commands.contains(&name) {
                entry.commands.push(name.clone());
            }
            if name == "run" {
                entry.services = Service::ALL
                    .iter()
                    .filter(|s| s.headings().contains(&group.as_str()))
                    .map(|s| s.name().to_owned())
                    .collect();
            }
        }
        collect(sub, &name, found);
    }
}

fn default_of(arg: &Arg) -> Option<String> {
    let values: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn meaning_of(arg: &Arg) -> String {
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|help| {
            help.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if values.is_empty() {
        help
    } else {
        format!("{help} (one of {})", values.join(", "))
    }
}

/// The settings the named services read (every setting of every command when none is named).
pub fn for_services(settings: Vec<Setting>, services: &[Service]) -> Vec<Setting> {
    if services.is_empty() {
        return settings;
    }
    settings
        .into_iter()
        .filter(|s| {
            services
                .iter()
                .any(|service| s.services.iter().any(|n| n == service.name()))
        })
        .collect()
}

/// Who reads a setting, for listings: its services, else its commands.
fn read_by(setting: &Setting) -> String {
    if setting.services.len() == Service::ALL.len() {
        return "every service".to_owned();
    }
    if !setting.services.is_empty() {
        return setting.services.join(", ");
    }
    setting
        .commands
        .iter()
        .map(|c| format!("`quotes {c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Markdown table (the README's configuration section is this, for every setting).
pub fn markdown(settings: &[Setting]) -> String {
    let mut out =
        String::from("| variable | default | read by | meaning |\n| --- | --- | --- | --- |\n");
    for s in settings {
        let default = match &s.default {
            Some(d) => format!("`{d}`"),
            None if !s.required_by.is_empty() => "— (required)".to_owned(),
            None => "—".to_owned(),
        };
        let meaning = s.meaning.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            s.variable,
            default.replace('|', "\\|"),
            read_by(s),
            meaning
        ));
    }
    out
}

/// Plain text for a terminal: one block per setting.
pub fn text(settings: &[Setting]) -> String {
    let mut out = String::new();
    let mut group = "";
    for s in settings {
        if s.group != group {
            group = &s.group;
            out.push_str(&format!("\n{group}:\n"));
        }
        let default = s.default.as_deref().unwrap_or(if s.required_by.is_empty() {
            ""
        } else {
            "(required)"
        });
        out.push_str(&format!(
            "  {}={}    [{}; {}]\n      {}\n",
            s.variable,
            default,
            s.flag,
            read_by(s).replace('`', ""),
            s.meaning
        ));
    }
    out
}
