//! The archiver's settings: where segments go and when they close.

use std::time::Duration;

use clap::Args;

use super::heading;
use super::parse::resource_name;

/// Where the archive is kept (the archiver; `quotes bootstrap` creates both).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::ARCHIVER)]
pub struct ArchiveStorageSettings {
    /// S3 bucket the archiver writes segments to (Terraform's `archive_bucket` output).
    #[arg(long, env = "ARCHIVE_BUCKET", default_value = "quote-archive", value_parser = bucket_name)]
    pub archive_bucket: String,
    /// DynamoDB table of the archive's manifest: per shard, its committed segments, how far it
    /// is archived and by which lease owner.
    #[arg(long, env = "ARCHIVE_MANIFEST_TABLE", default_value = "quote-archive-manifest", value_parser = resource_name)]
    pub archive_manifest_table: String,
}

/// The archive (archiver).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = heading::ARCHIVER)]
pub struct ArchiveSettings {
    /// Bucket and manifest.
    #[command(flatten)]
    pub storage: ArchiveStorageSettings,
    /// Prefix of every segment's key:
    /// `<prefix>stream=<name>/shard=<id>/<first>-<last>.jsonl.gz`.
    #[arg(long, env = "ARCHIVE_PREFIX", default_value = "events/", value_parser = key_prefix)]
    pub archive_prefix: String,
    /// A segment closes once its JSON Lines (before compression) reach this many bytes; one
    /// open segment per shard is held in memory, compressed.
    #[arg(long, env = "ARCHIVE_SEGMENT_BYTES", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=512 * 1024 * 1024))]
    pub archive_segment_bytes: u64,
    /// A segment closes once it is this many seconds old, so an idle shard's last records are
    /// archived (and checkpointed) within about this time.
    #[arg(long, env = "ARCHIVE_SEGMENT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub archive_segment_secs: u64,
}

impl ArchiveSettings {
    /// The archiver's configuration for the stream `stream`.
    pub fn config(&self, stream: &str) -> archiver::ArchiverConfig {
        archiver::ArchiverConfig {
            stream: stream.to_owned(),
            prefix: self.archive_prefix.clone(),
            segment_bytes: self.archive_segment_bytes,
            segment_age: Duration::from_secs(self.archive_segment_secs),
        }
    }
}

/// An S3 bucket name: 3–63 characters of `a-z 0-9 . -`, starting and ending with a letter or
/// digit.
pub fn bucket_name(value: &str) -> Result<String, String> {
    if !(3..=63).contains(&value.len()) {
        return Err(format!("{} characters: use 3 to 63", value.len()));
    }
    let valid = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid || !ends(value.chars().next()) || !ends(value.chars().last()) {
        return Err(
            "use lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit"
                .to_owned(),
        );
    }
    Ok(value.to_owned())
}

/// A key prefix: at most 256 characters, no leading `/`, printable ASCII (empty for none).
pub fn key_prefix(value: &str) -> Result<String, String> {
    if value.len() > 256 {
        return Err(format!("{} characters: use at most 256", value.len()));
    }
    if value.starts_with('/') {
        return Err("must not start with `/`".to_owned());
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err("use printable ASCII without spaces".to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(bucket_name("quote-archive").is_ok());
        assert!(bucket_name("prod.quote-archive-2").is_ok());
        assert!(bucket_name("ab").is_err());
        assert!(bucket_name("Quote-Archive").is_err());
        assert!(bucket_name("-archive").is_err());
        assert!(bucket_name("archive_1").is_err());
        assert!(bucket_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn prefixes_are_bounded_and_relative() {
        assert!(key_prefix("events/").is_ok());
        assert!(key_prefix("").is_ok());
        assert!(key_prefix("/events/").is_err());
        assert!(key_prefix("my events/").is_err());
        assert!(key_prefix(&"a".repeat(257)).is_err());
    }
}
