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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub properties: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`, or `rediss://` for TLS.
    pub url: String,
    pub batch: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckpointConfig {
    pub dir: String,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    pub retain: usize,
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
    pub memory_limit_mib: usize,
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
    #[serde(with = "humantime_serde_compat")]
    pub max_future_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineSection {
    pub batch_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OutputConfig {
    pub dead_letter: String,
    pub late: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    pub listen: String,
    pub token: String,
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
                message: e.to_string(),
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
                    message: e.to_string(),
                })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        crate::event::parse_zone(&self.time.zone).map_err(|e| format!("time.zone: {e}"))?;
        if self.checkpoint.retain == 0 {
            return Err("checkpoint.retain: must be at least 1".into());
        }
        if self.checkpoint.interval < Duration::from_millis(100) {
            return Err("checkpoint.interval: must be at least 100ms".into());
        }
        if self.engine.batch_size == 0 || self.engine.batch_size > 1 << 20 {
            return Err("engine.batch-size: must be between 1 and 1048576".into());
        }
        if self.plugins.memory_limit_mib < 2 {
            return Err("plugins.memory-limit-mib: must be at least 2".into());
        }
        if self.redis.batch == 0 {
            return Err("redis.batch: must be at least 1".into());
        }
        if !(self.redis.url.starts_with("redis://")
            || self.redis.url.starts_with("rediss://")
            || self.redis.url.starts_with("unix://"))
        {
            return Err(format!(
                "redis.url: {:?} must start with redis://, rediss:// or unix://",
                self.redis.url
            ));
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
    fn defaults_load() {
        let c = Config::from_parts(None, &[]).unwrap();
        assert_eq!(c.kafka.topic, "ecommerce-events");
        assert_eq!(c.checkpoint.interval, Duration::from_secs(30));
        assert_eq!(c.time.out_of_orderness, Duration::from_secs(10));
        assert_eq!(c.checkpoint.retain, 3);
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
        let env = vec![("FEATHERFLOW_CHECKPOINT_RETAIN".to_string(), "many".to_string())];
        let err = Config::from_parts(None, &env).unwrap_err();
        assert!(err.to_string().contains("checkpoint.retain"), "{err}");
        let err = Config::from_parts(
            Some(("f.toml", "[kafka.properties]\n\"fetch.min.bytes\" = \"1\"\n[nope]\n")),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown key `nope`"), "{err}");
    }
}
