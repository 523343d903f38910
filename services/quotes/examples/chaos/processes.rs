//! The processes of a chaos run: two event-source instances and two workers of each consumer
//! service, each in a slot that is refilled when its process is killed. A restarted consumer
//! worker gets a new `WORKER_ID` (`<service>-<slot>-g<generation>`), as a replaced container
//! task would.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{free_port, wait_healthy, Platform, CONSUMERS};

/// Niceness of the processes under test. The emulators stand in for AWS, which runs on its own
/// machines; on a two-core machine twelve services would otherwise take most of the CPU from
/// kinesis-mock (one node thread) and moto's DynamoDB, whose answers then slow down for every
/// process at once. Raising a process's niceness needs no privilege.
const SERVICE_NICENESS: &str = "10";

/// `command` run through `nice`, so every thread of the process starts at the lower priority
/// (Linux keeps a niceness per thread: a `renice` after the start would miss the runtime's
/// threads already running). `nice` execs the program, so the process id is the service's.
fn niced(command: &Command) -> Command {
    let mut niced = Command::new("nice");
    niced
        .args(["-n", SERVICE_NICENESS])
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => niced.env(name, value),
            None => niced.env_remove(name),
        };
    }
    niced
}

/// One slot: what runs there now.
#[derive(Debug)]
struct Slot {
    /// `event-source` or a consumer service.
    service: &'static str,
    /// Which of the service's slots (0 or 1).
    index: usize,
    /// How often the slot was (re)started.
    generation: u32,
    /// The running process.
    child: Child,
    /// Its `LISTEN_ADDR` port.
    port: u16,
}

impl Slot {
    fn label(&self) -> String {
        format!("{}-{}-g{}", self.service, self.index, self.generation)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Every process of the run; each is killed (SIGKILL) when this is dropped.
pub struct Processes {
    platform: Platform,
    /// Where each process's output goes (`<label>.log`).
    logs: std::path::PathBuf,
    slots: Vec<Slot>,
    /// Base URLs of the healthy event-source instances, shared with the load.
    api_urls: Arc<Mutex<Vec<String>>>,
    /// Processes that exited without being killed (label and status).
    pub crashed: Vec<String>,
}

impl Processes {
    /// Starts `workers` instances of event-source and of every consumer service and waits until
    /// every one is healthy.
    pub async fn start(platform: Platform, workers: usize, logs: std::path::PathBuf) -> Self {
        let mut processes = Self {
            platform,
            logs,
            slots: Vec::new(),
            api_urls: Arc::default(),
            crashed: Vec::new(),
        };
        for service in std::iter::once("event-source").chain(CONSUMERS) {
            for index in 0..workers {
                let slot = processes.spawn(service, index, 0);
                processes.slots.push(slot);
            }
        }
        for slot in &processes.slots {
            wait_healthy(&slot.label(), slot.port).await;
        }
        let urls: Vec<String> = processes
            .slots
            .iter()
            .filter(|s| s.service == "event-source")
            .map(Slot::url)
            .collect();
        *processes.urls() = urls;
        processes
    }

    fn spawn(&self, service: &'static str, index: usize, generation: u32) -> Slot {
        let port = free_port();
        let label = format!("{service}-{index}-g{generation}");
        let mut command = niced(&self.platform.command(service));
        command.env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        let log = std::fs::File::create(self.logs.join(format!("{label}.log")));
        if let Ok(log) = log {
            if let Ok(copy) = log.try_clone() {
                command.stdout(copy).stderr(log);
            }
        }
        if service == "event-source" {
            command
                .env("RELAY_SWEEP_INTERVAL_MS", "500")
                .env("RELAY_SWEEP_GRACE_MS", "1000");
        } else {
            command
                .env("LEASE_TABLE", &self.platform.lease_tables[service])
                .env("WORKER_ID", &label)
                .env("RELAY_SWEEP_INTERVAL_MS", "500")
                .env("RELAY_SWEEP_GRACE_MS", "1000")
                .env("VPIC_BASE_URL", "off")
                .env("DRIVER_HISTORY_PROVIDER", "simulated")
                // A notifier killed between its claim and its record leaves a claim that holds
                // its shard until it is stale (120 s by default, longer than the drain's wait
                // for notifications): short here, where kills are the point, as in the
                // end-to-end suites. A stale claim becomes `unknown`, never resent.
                .env("NOTIFY_CLAIM_TIMEOUT_SECS", "5");
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        Slot {
            service,
            index,
            generation,
            child,
            port,
        }
    }

    fn urls(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.api_urls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The base URLs of the healthy event-source instances, kept up to date across kills.
    pub fn api_urls(&self) -> Arc<Mutex<Vec<String>>> {
        self.api_urls.clone()
    }

    /// The label and process id of every process now running.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.slots
            .iter()
            .map(|s| (format!("{}-{}", s.service, s.index), s.child.id()))
            .collect()
    }

    /// How many slots there are (the victims a kill chooses from).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// SIGKILLs the process in slot `n` (of [`Processes::len`]), waits `pause`, and starts its
    /// successor; an event-source successor joins the API URLs once it is healthy. Returns the
    /// killed process's label.
    pub async fn kill_and_restart(&mut self, n: usize, pause: Duration) -> String {
        let (victim, url, service, index, generation) = {
            let slot = &mut self.slots[n];
            let _ = slot.child.kill();
            let _ = slot.child.wait();
            (
                slot.label(),
                slot.url(),
                slot.service,
                slot.index,
                slot.generation,
            )
        };
        self.urls().retain(|u| *u != url);
        tokio::time::sleep(pause).await;
        let next = self.spawn(service, index, generation + 1);
        if service == "event-source" {
            let (label, port, url, urls) = (next.label(), next.port, next.url(), self.api_urls());
            tokio::spawn(async move {
                wait_healthy(&label, port).await;
                urls.lock().unwrap_or_else(|e| e.into_inner()).push(url);
            });
        }
        self.slots[n] = next;
        victim
    }

    /// Notes processes that exited on their own since the last call.
    pub fn check_crashes(&mut self) {
        for slot in &mut self.slots {
            if let Ok(Some(status)) = slot.child.try_wait() {
                let entry = format!("{} ({status})", slot.label());
                if !self.crashed.contains(&entry) {
                    eprintln!("chaos: {entry} exited on its own");
                    self.crashed.push(entry);
                }
            }
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        for slot in &mut self.slots {
            if let Ok(None) = slot.child.try_wait() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(slot.child.id().to_string())
                    .status();
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for slot in &mut self.slots {
            while let Ok(None) = slot.child.try_wait() {
                if std::time::Instant::now() >= deadline {
                    let _ = slot.child.kill();
                    let _ = slot.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            let _ = slot.child.kill();
            let _ = slot.child.wait();
        }
    }
}
