//! Configuration: one documented serde tree, validated once.
//!
//! Precedence, lowest first: the embedded `default.toml` < the file given
//! with `--config` < `FEATHERFLOW_<SECTION>_<KEY>` environment variables <
//! command-line flags (applied by `app`). Unknown keys are rejected; every
//! error names the key.

use std::time::Duration;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub kafka: KafkaConfig,
    pub redis: RedisConfig,
    pub checkpoint: CheckpointConfig,
    pub restore: RestoreConfig,
    pub plugins: PluginsConfig,
    pub time: TimeConfig,
    pub engine: EngineSection,
    pub output: OutputConfig,
    pub api: ApiConfig,
}

/// `Debug` is written out: librdkafka properties that hold secrets
/// (`sasl.password`, `ssl.key.password`, ... see [`is_secret_property`])
/// print as `***`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// Who reads which partition: every one (`static`) or the share the
    /// consumer group `group` gives this engine (`group`).
    pub assignment: Assignment,
    /// Static membership in the group (`group.instance.id`); "" = none.
    pub instance_id: String,
    pub properties: std::collections::BTreeMap<String, String>,
}

/// `kafka.assignment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Join the consumer group `kafka.group` (cooperative-sticky): the
    /// engines of the group share the partitions; each partition has an
    /// engine core and a checkpoint store of its own.
    Group,
    /// Read every partition of the topic, in one engine core.
    Static,
}

/// librdkafka properties the engine sets itself, each with why a config
/// may not change it in `kafka.properties`.
pub const ENGINE_KAFKA_PROPERTIES: &[(&str, &str)] = &[
    // The sources also take messages off librdkafka's queues in batches,
    // which assumes no auto-commit replies arrive on them.
    (
        "enable.auto.commit",
        "offsets are committed by the engine, after a durable checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed by the engine, after a durable checkpoint",
    ),
    ("group.id", "set it with kafka.group"),
];

/// Whether a librdkafka property's value is a secret: passwords, keys,
/// OAuth client secrets and JAAS configs.
pub fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "sasl.jaas",
        "key.pem",
        "ssl.key",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|s| n.contains(s))
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: std::collections::BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_property(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("assignment", &self.assignment)
            .field("instance_id", &self.instance_id)
            .field("properties", &properties)
            .finish()
    }
}

/// `Debug` is written out: it shows the URL through [`redact_url`], so a
/// `{:?}` of the configuration never prints the Redis password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`, or `rediss://` for TLS. May hold
    /// a password: print it only through [`redact_url`].
    pub url: String,
    pub batch: usize,
    /// Write each key with a script that refuses an older window than the
    /// key holds (needed when several engines may write the same keys).
    pub keep_newest: bool,
    /// The commands that write a key (`RESTORE` also inside the
    /// keep-newest script).
    pub write: RedisWrite,
    /// Non-empty: a Redis Cluster reached through these seed nodes
    /// (`redis://` URLs, passwords as in `url`), and `url` is not used.
    pub cluster_nodes: Vec<String>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("batch", &self.batch)
            .field("keep_newest", &self.keep_newest)
            .field("write", &self.write)
            .field(
                "cluster_nodes",
                &self.cluster_nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `redis.write`: how a key's fields and TTL are written (atomically
/// either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisWrite {
    /// `HSET` + `EXPIRE` per key, in one `MULTI`/`EXEC` per batch: fields
    /// are set, never deleted.
    Hset,
    /// One `RESTORE key ttl payload REPLACE` per key (inside the
    /// keep-newest script with `keep_newest`): the key then holds the
    /// record's fields only. About 40 % less of Redis's CPU per key; needs Redis
    /// 7.0 or later and the `RESTORE` command (ACL category `@dangerous`).
    Restore,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckpointConfig {
    /// "" (the sled store in `dir`), `file:///absolute/path` or
    /// `s3://bucket/prefix` (endpoint and credentials from `AWS_*`).
    pub url: String,
    pub dir: String,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    pub retain: usize,
}

/// Where the checkpoints are kept, from `checkpoint.url` and `checkpoint.dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The local store (sled commit records) in `checkpoint.dir`.
    Local(String),
    /// Plain files in a directory that may be shared.
    Dir(String),
    /// S3-compatible object storage: `s3://bucket/prefix`.
    S3(String),
}

impl CheckpointConfig {
    /// Where partition `p`'s checkpoints are kept when the partitions are
    /// shared by a consumer group: `partition-{p}` under the store, and in
    /// plain files (not sled) under `dir`, so that another engine on this
    /// machine can take the partition over.
    pub fn partition_store(&self, p: u32) -> Result<StoreLocation, String> {
        Ok(match self.store_dir()? {
            StoreLocation::Local(dir) | StoreLocation::Dir(dir) => {
                StoreLocation::Dir(format!("{}/partition-{p}", dir.trim_end_matches('/')))
            }
            StoreLocation::S3(url) => StoreLocation::S3(format!("{url}/partition-{p}")),
        })
    }

    /// The store `url` names, else the local one in `dir`; an error names
    /// the key.
    pub fn store_dir(&self) -> Result<StoreLocation, String> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(StoreLocation::Local(self.dir.clone()));
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(format!(
                    "checkpoint.url: {url:?} must name an absolute directory, as in file:///mnt/shared/featherflow"
                ));
            }
            return Ok(StoreLocation::Dir(path.trim_end_matches('/').to_string()));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(format!(
                    "checkpoint.url: {url:?} names no bucket, as in s3://bucket/featherflow"
                ));
            }
            return Ok(StoreLocation::S3(url.trim_end_matches('/').to_string()));
        }
        Err(format!(
            "checkpoint.url: {url:?} is not a store this engine knows: use \"\" (checkpoint.dir), file:///absolute/path or s3://bucket/prefix"
        ))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestoreConfig {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginsConfig {
    pub dir: String,
    /// Where compiled components are kept between loads ("" = nowhere).
    pub cache_dir: String,
    /// Where `plugin build` installs the Python and JavaScript toolchains
    /// ("" = `~/.cache/featherflow/tools`).
    pub tools_dir: String,
    pub memory_limit_mib: usize,
    /// The most a plugin may declare for itself (`featherflow-plugin.toml`).
    pub max_memory_limit_mib: usize,
    #[serde(with = "humantime_serde_compat")]
    pub batch_deadline: Duration,
    pub max_failures: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeConfig {
    pub zone: String,
    #[serde(with = "humantime_serde_compat")]
    pub out_of_orderness: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// What the watermark does once every partition has been idle for
    /// `idle-timeout`: "hold" (default; deterministic) or "wall-clock"
    /// (advance with the wall clock, so a quiet stream's windows close).
    pub idle_watermark: crate::time::IdleWatermark,
    #[serde(with = "humantime_serde_compat")]
    pub max_future_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineSection {
    pub batch_size: usize,
    /// SIGTERM/SIGINT end the process within this: a final checkpoint if
    /// Redis and the broker answer in time, else a message saying which
    /// checkpoint the next start restores.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutputConfig {
    pub dead_letter: String,
    pub late: String,
    /// A record log rotates before it would pass this size.
    pub max_file_mib: u64,
    /// Rotated files kept per record log (`x.jsonl.1` newest); 0 = none.
    pub max_files: usize,
}

impl OutputConfig {
    /// The size limits of the record logs (dead letters, late events).
    pub fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_bytes: self.max_file_mib.saturating_mul(1 << 20),
            max_files: self.max_files,
        }
    }
}

/// How large a record log may grow: it rotates (`x.jsonl` -> `x.jsonl.1`
/// -> ...) before the current file would pass `max_bytes`, and keeps
/// `max_files` rotated files. On disk: at most `(max_files + 1) *
/// max_bytes`, plus one line when a single line is larger than `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

impl LogLimits {
    /// Never rotates.
    pub const UNLIMITED: Self = Self {
        max_bytes: u64::MAX,
        max_files: 0,
    };
}

/// `Debug` is written out: it never shows the token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    pub listen: String,
    /// A secret: never printed.
    pub token: String,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() { "" } else { "***" };
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("token", &token)
            .finish()
    }
}

/// `url` with its secrets masked, for logs, errors and `Debug`: the user
/// info (`user:password@`) and the values of `pass` / `password` query
/// parameters (redis-rs reads `unix:///run/redis.sock?pass=…`) become
/// `***`; scheme, host, port and database stay, so a message still says
/// where. It errs on the side of masking: a password with an unencoded
/// `@`, `/`, `?` or `#` is still masked whole, and text that is not a URL
/// at all is masked up to its last `@`.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for span in secret_spans(url) {
        out.push_str(&url[copied..span.start]);
        out.push_str("***");
        copied = span.end;
    }
    out.push_str(&url[copied..]);
    out
}

/// `text` with every URL in it (a run of characters other than blanks and
/// quotes that holds `://`) passed through [`redact_url`].
pub fn redact_urls_in(text: &str) -> String {
    let separator = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>');
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(separator) {
        let token = piece.trim_end_matches(separator);
        if token.contains("://") {
            out.push_str(&redact_url(token));
            out.push_str(&piece[token.len()..]);
        } else {
            out.push_str(piece);
        }
    }
    out
}

/// Every text of `url` that is a secret, as written and percent-decoded:
/// the user info, the password alone, and `pass` / `password` query
/// values. For masking them in text that may quote them (an error message
/// of a client library); never empty strings.
pub fn url_secrets(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    for span in secret_spans(url) {
        let text = &url[span];
        // The password alone, after `user:` in the user info.
        let password = text.split_once(':').map(|(_, p)| p);
        for s in std::iter::once(text).chain(password) {
            secrets.push(s.to_string());
            secrets.push(percent_decode(s));
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// Byte ranges of `url` that hold secrets, sorted and disjoint: the user
/// info (from `://`, or the start, to the last `@`) and the value of every
/// `pass` / `password` query parameter (to the next `&` or the end).
fn secret_spans(url: &str) -> Vec<std::ops::Range<usize>> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let mut spans = Vec::new();
    if let Some(at) = url[start..].rfind('@') {
        spans.push(start..start + at);
    }
    if let Some(q) = url[start..].find('?') {
        let mut p = start + q + 1;
        for pair in url[p..].split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                let key = percent_decode(key).to_ascii_lowercase();
                if matches!(key.as_str(), "pass" | "password") && !value.is_empty() {
                    let from = p + pair.len() - value.len();
                    spans.push(from..p + pair.len());
                }
            }
            p += pair.len() + 1;
        }
    }
    spans.sort_by_key(|s| s.start);
    let mut merged: Vec<std::ops::Range<usize>> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    merged
}

/// `%XX` escapes and `+` decoded as a URL query does (invalid escapes kept
/// as they are, invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Durations as humantime strings ("30s", "10min", "1d").
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration like \"30s\" or \"10min\": {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    /// Defaults, then `file`, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("FEATHERFLOW_"))
            .collect();
        let text = match file {
            Some(p) => Some((
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
            )),
            None => None,
        };
        Self::from_parts(text.as_ref().map(|(p, t)| (p.as_str(), t.as_str())), &env)
    }

    /// The pure part of [`Config::load`], for tests.
    pub fn from_parts(file: Option<(&str, &str)>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut merged: toml::Table = DEFAULTS.parse().expect("default.toml parses");
        if let Some((path, text)) = file {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Invalid {
                origin: path.to_string(),
                // It quotes the line, which may hold a Redis URL.
                message: redact_urls_in(&e.to_string()),
            })?;
            merge(&mut merged, table, path, "")?;
        }
        for (name, value) in env {
            apply_env(&mut merged, name, value)?;
        }
        let origin = file.map_or("configuration", |(p, _)| p).to_string();
        let config: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: origin.clone(),
                    // It may quote a value.
                    message: redact_urls_in(&e.to_string()),
                })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        crate::event::parse_zone(&self.time.zone).map_err(|e| format!("time.zone: {e}"))?;
        self.checkpoint.store_dir()?;
        if self.checkpoint.retain == 0 {
            return Err("checkpoint.retain: must be at least 1".into());
        }
        if self.checkpoint.interval < Duration::from_millis(100) {
            return Err("checkpoint.interval: must be at least 100ms".into());
        }
        if self.engine.batch_size == 0 || self.engine.batch_size > 1 << 20 {
            return Err("engine.batch-size: must be between 1 and 1048576".into());
        }
        if self.engine.shutdown_timeout < Duration::from_secs(1) {
            return Err("engine.shutdown-timeout: must be at least 1s".into());
        }
        if self.plugins.memory_limit_mib < 2 {
            return Err("plugins.memory-limit-mib: must be at least 2".into());
        }
        if self.plugins.max_memory_limit_mib < self.plugins.memory_limit_mib {
            return Err("plugins.max-memory-limit-mib: must be at least plugins.memory-limit-mib".into());
        }
        if self.output.max_file_mib == 0 {
            return Err("output.max-file-mib: must be at least 1".into());
        }
        if self.redis.batch == 0 {
            return Err("redis.batch: must be at least 1".into());
        }
        if !(self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://")
            || self.redis.url.starts_with("unix://"))
        {
            // Not the URL itself: it may hold a password.
            let scheme = self.redis.url.split("://").next().unwrap_or("");
            return Err(format!(
                "redis.url: must start with redis://, rediss:// or unix:// (it starts with {:?})",
                if scheme.len() < self.redis.url.len() {
                    scheme
                } else {
                    "no scheme"
                }
            ));
        }
        for (key, why) in ENGINE_KAFKA_PROPERTIES {
            if self.kafka.properties.contains_key(*key) {
                return Err(format!(
                    "kafka.properties.\"{key}\": the engine sets this property ({why}); remove it"
                ));
            }
        }
        for (i, node) in self.redis.cluster_nodes.iter().enumerate() {
            if !(node.starts_with("redis://") || node.starts_with("rediss://")) {
                return Err(format!(
                    "redis.cluster-nodes[{i}]: must start with redis:// or rediss:// (a cluster node's URL)"
                ));
            }
        }
        self.api
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("api.listen: {:?} is not host:port: {e}", self.api.listen))?;
        Ok(())
    }

    /// The zone offset of naive timestamps, in ms.
    pub fn zone_offset_ms(&self) -> i64 {
        crate::event::parse_zone(&self.time.zone).expect("validated")
    }
}

/// Merge `from` into `into`, rejecting keys the defaults do not have.
fn merge(into: &mut toml::Table, from: toml::Table, origin: &str, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in from {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // Free-form tables (librdkafka properties) take any key.
        let free_form = path == "kafka.properties";
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(dst)), toml::Value::Table(src)) if !free_form => merge(dst, src, origin, &path)?,
            (Some(slot), v) => *slot = v,
            (None, _) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_string(),
                    message: format!("unknown key `{path}`"),
                });
            }
        }
    }
    Ok(())
}

/// `FEATHERFLOW_TIME_OUT_OF_ORDERNESS=5s` → `time.out-of-orderness = "5s"`.
fn apply_env(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let rest = &name["FEATHERFLOW_".len()..];
    let lower = rest.to_ascii_lowercase();
    let Some((section, key)) = lower.split_once('_') else {
        return Err(ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            message: "expected FEATHERFLOW_<SECTION>_<KEY>".into(),
        });
    };
    let key = key.replace('_', "-");
    let Some(toml::Value::Table(sec)) = table.get_mut(section) else {
        return Err(ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            message: format!("unknown section `{section}`"),
        });
    };
    let Some(slot) = sec.get_mut(&key) else {
        return Err(ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            message: format!("unknown key `{section}.{key}`"),
        });
    };
    *slot = match slot {
        // A list: comma-separated (FEATHERFLOW_REDIS_CLUSTER_NODES=redis://a:7000,redis://b:7001).
        toml::Value::Array(_) => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| toml::Value::String(v.to_string()))
                .collect(),
        ),
        toml::Value::Integer(_) => value
            .parse()
            .map(toml::Value::Integer)
            .map_err(|_| ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                message: format!("`{section}.{key}` wants an integer, got {value:?}"),
            })?,
        _ => toml::Value::String(value.to_string()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debug_print_of_the_config_shows_no_secret() {
        let toml = r#"
            [kafka.properties]
            "sasl.password" = "kafka-secret-1"
            "ssl.key.password" = "kafka-secret-2"
            "sasl.oauthbearer.client.secret" = "kafka-secret-3"
            "sasl.jaas.config" = "kafka-secret-4"
            "security.protocol" = "SASL_SSL"
            [redis]
            url = "redis://:redis-secret@127.0.0.1:6379/0"
        "#;
        let c = Config::from_parts(Some(("ff.toml", toml)), &[]).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("secret-"), "{printed}");
        assert!(
            printed.contains("SASL_SSL") && printed.contains("sasl.password"),
            "{printed}"
        );
        assert_eq!(
            c.kafka.properties["sasl.password"], "kafka-secret-1",
            "the value itself is kept"
        );
    }

    #[test]
    fn defaults_load() {
        let c = Config::from_parts(None, &[]).unwrap();
        assert_eq!(c.kafka.topic, "ecommerce-events");
        assert_eq!(c.checkpoint.interval, Duration::from_secs(30));
        assert_eq!(c.time.out_of_orderness, Duration::from_secs(10));
        assert_eq!(c.checkpoint.retain, 3);
        assert_eq!(c.output.max_file_mib, 64);
        assert_eq!(c.output.max_files, 5);
        assert_eq!(
            c.output.log_limits(),
            LogLimits {
                max_bytes: 64 << 20,
                max_files: 5
            }
        );
    }

    #[test]
    fn file_then_env_override() {
        let file = "[kafka]\nbrokers = \"k:1\"\n[time]\nzone = \"+09:00\"\n";
        let env = vec![
            ("FEATHERFLOW_KAFKA_BROKERS".to_string(), "k:2".to_string()),
            ("FEATHERFLOW_CHECKPOINT_RETAIN".to_string(), "5".to_string()),
        ];
        let c = Config::from_parts(Some(("f.toml", file)), &env).unwrap();
        assert_eq!(c.kafka.brokers, "k:2");
        assert_eq!(c.checkpoint.retain, 5);
        assert_eq!(c.zone_offset_ms(), 9 * 3_600_000);
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::from_parts(Some(("f.toml", "[kafka]\nbroker = \"x\"\n")), &[]).unwrap_err();
        assert!(err.to_string().contains("kafka.broker"), "{err}");
        let err = Config::from_parts(Some(("f.toml", "[checkpoint]\ninterval = \"soon\"\n")), &[]).unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
        let err = Config::from_parts(Some(("f.toml", "[time]\nzone = \"Mars/Base\"\n")), &[]).unwrap_err();
        assert!(err.to_string().contains("time.zone"), "{err}");
        let err = Config::from_parts(Some(("f.toml", "[time]\nidle-watermark = \"sometimes\"\n")), &[]).unwrap_err();
        assert!(
            err.to_string().contains("idle-watermark") && err.to_string().contains("wall-clock"),
            "{err}"
        );
        let c = Config::from_parts(Some(("f.toml", "[time]\nidle-watermark = \"wall-clock\"\n")), &[]).unwrap();
        assert_eq!(c.time.idle_watermark, crate::time::IdleWatermark::WallClock);
        let err = Config::from_parts(Some(("f.toml", "[engine]\nshutdown-timeout = \"10ms\"\n")), &[]).unwrap_err();
        assert!(err.to_string().contains("engine.shutdown-timeout"), "{err}");
        let env = vec![("FEATHERFLOW_CHECKPOINT_RETAIN".to_string(), "many".to_string())];
        let err = Config::from_parts(None, &env).unwrap_err();
        assert!(err.to_string().contains("checkpoint.retain"), "{err}");
        let err = Config::from_parts(
            Some(("f.toml", "[kafka.properties]\n\"fetch.min.bytes\" = \"1\"\n[nope]\n")),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown key `nope`"), "{err}");
        // redis.write: two forms.
        let err = Config::from_parts(Some(("f.toml", "[redis]\nwrite = \"dump\"\n")), &[]).unwrap_err();
        assert!(
            err.to_string().contains("write") && err.to_string().contains("restore"),
            "{err}"
        );
        let env = vec![("FEATHERFLOW_REDIS_WRITE".to_string(), "restore".to_string())];
        assert_eq!(Config::from_parts(None, &env).unwrap().redis.write, RedisWrite::Restore);
        // Properties the engine sets itself are refused, each by name.
        for (key, value) in [
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "true"),
            ("group.id", "other"),
        ] {
            let file = format!("[kafka.properties]\n\"fetch.min.bytes\" = \"1\"\n\"{key}\" = \"{value}\"\n");
            let err = Config::from_parts(Some(("f.toml", &file)), &[]).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("kafka.properties.\"{key}\": the engine sets this property")),
                "{err}"
            );
        }
    }

    #[test]
    fn record_log_limits() {
        let err = Config::from_parts(Some(("f.toml", "[output]\nmax-file-mib = 0\n")), &[]).unwrap_err();
        assert!(
            err.to_string().contains("output.max-file-mib: must be at least 1"),
            "{err}"
        );
        let err = Config::from_parts(Some(("f.toml", "[output]\nmax-files = -1\n")), &[]).unwrap_err();
        assert!(err.to_string().contains("max-files"), "{err}");
        let env = vec![
            ("FEATHERFLOW_OUTPUT_MAX_FILE_MIB".to_string(), "1".to_string()),
            ("FEATHERFLOW_OUTPUT_MAX_FILES".to_string(), "0".to_string()),
        ];
        let c = Config::from_parts(None, &env).unwrap();
        assert_eq!(
            c.output.log_limits(),
            LogLimits {
                max_bytes: 1 << 20,
                max_files: 0
            }
        );
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let file = "[redis]\nurl = \"redis://user:hunter2@cache:6379/0\"\n[api]\ntoken = \"t0ken-t0ken\"\n";
        let c = Config::from_parts(Some(("f.toml", file)), &[]).unwrap();
        let debug = format!("{c:?} {c:#?}");
        assert!(!debug.contains("hunter2") && !debug.contains("t0ken"), "{debug}");
        assert!(debug.contains("redis://***@cache:6379/0"), "{debug}");
        // A file that does not parse: the error quotes the line.
        let broken = "[redis]\nurl = \"redis://:hunter2@cache:6379/0\" oops\n";
        let err = Config::from_parts(Some(("f.toml", broken)), &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("f.toml"), "{err}");
        // A value of the wrong type, quoted in the error.
        let wrong = "[redis]\nbatch = \"redis://:hunter2@cache\"\n";
        let err = Config::from_parts(Some(("f.toml", wrong)), &[])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2") && err.contains("batch"), "{err}");
        // A URL of the wrong scheme.
        let env = vec![("FEATHERFLOW_REDIS_URL".to_string(), "http://:hunter2@cache".to_string())];
        let err = Config::from_parts(None, &env).unwrap_err().to_string();
        assert!(!err.contains("hunter2") && err.contains("redis.url"), "{err}");
    }
}
