//! HTTP: Prometheus metrics, health, a JSON API and the dashboard (the
//! Flink Web UI's role).
//!
//! The job thread publishes a [`Status`] snapshot a few times a second;
//! handlers only read it, so the API never touches the engine. [`router`]
//! is a pure function of that shared state, tested without a socket.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;

use crate::engine::{Stats, ViewStats};
use crate::sink::redis::{FIRE_TO_ACK_BOUNDS_MS, LATENCY_BOUNDS_MS, RedisStats};
use crate::state::CheckpointMeta;

/// One view, as the API shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ViewStatus {
    pub view: String,
    pub version: String,
    pub hash: String,
    pub state_version: u32,
    /// The instance's memory limit (the plugin's own, or the default).
    pub memory_limit_mib: usize,
    pub window: String,
    pub loaded_since_ms: i64,
    pub open_states: usize,
    pub disabled: Option<String>,
    pub stats: ViewStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    pub watermark: i64,
    pub idle: bool,
    /// Next offset the job will read.
    pub position: i64,
    /// End offset last seen on the broker (-1 = unknown).
    pub end: i64,
    /// When the partition has an engine core of its own (a group member):
    /// its records read per second, its open window parts, and how long
    /// restoring its checkpoint took when it was assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_states: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_ms: Option<u64>,
}

/// Who this engine is, for the API: how it gets its partitions and, in a
/// consumer group, its name there.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Member {
    /// `kafka.assignment`: "static" or "group".
    pub assignment: String,
    pub group: String,
    /// `kafka.instance-id`, else `host:pid`.
    pub instance: String,
    pub host: String,
    pub pid: u32,
}

impl Member {
    pub fn of(config: &crate::config::Config) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let pid = std::process::id();
        let k = &config.kafka;
        Member {
            assignment: match k.assignment {
                crate::config::Assignment::Group => "group".into(),
                crate::config::Assignment::Static => "static".into(),
            },
            group: k.group.clone(),
            instance: if k.instance_id.is_empty() {
                format!("{host}:{pid}")
            } else {
                k.instance_id.clone()
            },
            host,
            pid,
        }
    }
}

/// Everything the API shows; published by the job loop.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    pub member: Member,
    pub started_ms: i64,
    pub updated_ms: i64,
    pub topic: String,
    pub sources_assigned: bool,
    pub kafka_errors: u64,
    /// Causes failing right now (`"the source"`, `"checkpoints"`), each
    /// logged once when it started (see `outage`).
    pub failing: Vec<String>,
    pub watermark: i64,
    pub engine: Stats,
    pub views: Vec<ViewStatus>,
    pub partitions: Vec<PartitionStatus>,
    pub checkpoints: Vec<CheckpointMeta>,
    pub checkpoint_interval_ms: u64,
    pub last_checkpoint_pause_ms: f64,
    /// Events read per second, sampled each publish (the last few minutes).
    pub throughput: Vec<(i64, f64)>,
    /// Plugin deploys, swaps, refusals and rollbacks.
    pub history: Vec<crate::engine::SwapRecord>,
}

#[derive(Clone)]
pub struct ApiState {
    pub status: Arc<Mutex<Status>>,
    pub redis: Arc<RedisStats>,
    /// Deploys through the API: `None` = the mutating endpoints are off.
    pub admin: Option<Arc<Admin>>,
}

/// Largest plugin upload `PUT /api/plugins/{name}` takes: 16 MiB. Guest
/// components are tens of KB (a few MB with debug info). A larger upload
/// is refused with 413 Payload Too Large: at once when its
/// `Content-Length` says so, otherwise as soon as the bytes read pass
/// this, so a client can make the server hold at most this much (and only
/// after its token was checked).
pub const MAX_UPLOAD_BYTES: usize = 16 << 20;

/// Longest plugin name the API takes. A name is 1 to this many characters
/// of `[A-Za-z0-9_-]`: it becomes the file `{name}.wasm` in the plugin
/// directory, so it can hold no `/`, `.` or `..`.
pub const MAX_PLUGIN_NAME: usize = 64;

/// What the mutating endpoints need. They never touch the engine: an
/// upload is validated here, then renamed into the plugin directory, where
/// the watcher deploys it like any other file.
pub struct Admin {
    pub token: String,
    pub plugins_dir: std::path::PathBuf,
    pub engine: crate::plugin::PluginEngine,
    pub limits: crate::plugin::Limits,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/api/overview", get(overview))
        .route("/api/partitions", get(partitions))
        .route("/api/checkpoints", get(checkpoints))
        .route("/api/plugins", get(plugins))
        .route("/api/plugins/history", get(history))
        .route("/api/bad-records", get(bad_records))
        .route("/api/plugins/{name}", axum::routing::put(upload).delete(remove))
        // The upload reads its body itself (`read_upload`); this bounds any
        // other handler that would extract one.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(state)
}

fn snapshot(state: &ApiState) -> Status {
    state.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn ready(State(state): State<ApiState>) -> Response {
    let s = snapshot(&state);
    let now = crate::clock::now_ms();
    let redis_ok = state.redis.connected.load(Ordering::Relaxed) || !state.redis.tried.load(Ordering::Relaxed);
    let last = s.checkpoints.last().map(|c| c.created_ms);
    let recent = match last {
        Some(t) => now - t <= 3 * s.checkpoint_interval_ms as i64 + 5_000,
        None => now - s.started_ms <= 3 * s.checkpoint_interval_ms as i64 + 5_000,
    };
    let body = serde_json::json!({
        "sources_assigned": s.sources_assigned,
        "redis_reachable": redis_ok,
        "checkpoint_recent": recent,
        "failing": s.failing,
    });
    let code = if s.sources_assigned && redis_ok && recent && s.failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn overview(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let s = snapshot(&state);
    let r = &state.redis;
    Json(serde_json::json!({
        "member": s.member,
        "partitions": s.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        "started_ms": s.started_ms,
        "updated_ms": s.updated_ms,
        "topic": s.topic,
        "watermark": s.watermark,
        "engine": s.engine,
        "kafka_errors": s.kafka_errors,
        "throughput": s.throughput,
        "last_checkpoint_pause_ms": s.last_checkpoint_pause_ms,
        "redis": {
            "keys_written": r.keys_written.load(Ordering::Relaxed),
            "older_windows_skipped": r.older_windows_skipped.load(Ordering::Relaxed),
            "retries": r.retries.load(Ordering::Relaxed),
            "connected": r.connected.load(Ordering::Relaxed),
            "queued_batches": r.queued.load(Ordering::Relaxed),
        },
        "views": s.views,
        "freshness": freshness(r, crate::clock::now_ms()),
        "failing": s.failing,
    }))
}

/// Per view: the newest window in Redis, its age, and fire-to-Redis
/// percentiles (from the histogram's bucket bounds).
fn freshness(r: &RedisStats, now_ms: i64) -> serde_json::Value {
    let views = r.views.lock().unwrap_or_else(|e| e.into_inner());
    let out: serde_json::Map<String, serde_json::Value> = views
        .iter()
        .map(|(view, f)| {
            let total: u64 = f.fire_to_ack_buckets.iter().sum();
            let quantile = |q: f64| {
                let want = (total as f64 * q).ceil() as u64;
                let mut seen = 0;
                for (i, n) in f.fire_to_ack_buckets.iter().enumerate() {
                    seen += n;
                    if seen >= want.max(1) {
                        return FIRE_TO_ACK_BOUNDS_MS[i];
                    }
                }
                f64::INFINITY
            };
            let bound = |q: f64| {
                let b = quantile(q);
                if b.is_finite() {
                    serde_json::json!(b)
                } else {
                    serde_json::json!(">10000")
                }
            };
            (
                view.clone(),
                serde_json::json!({
                    "newest_window_end_ms": f.newest_window_end,
                    "newest_window_age_s": (now_ms - f.newest_window_end) as f64 / 1000.0,
                    "last_write_ms": f.last_write_ms,
                    "keys_written": f.keys,
                    "fire_to_redis_p50_ms_at_most": bound(0.5),
                    "fire_to_redis_p99_ms_at_most": bound(0.99),
                }),
            )
        })
        .collect();
    serde_json::Value::Object(out)
}

/// `v` as a Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn partitions(State(state): State<ApiState>) -> Json<Vec<PartitionStatus>> {
    Json(snapshot(&state).partitions)
}

async fn checkpoints(State(state): State<ApiState>) -> Json<Vec<CheckpointMeta>> {
    Json(snapshot(&state).checkpoints)
}

async fn plugins(State(state): State<ApiState>) -> Json<Vec<ViewStatus>> {
    Json(snapshot(&state).views)
}

/// A refused request: its status and a one-line reason.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

fn refuse(code: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(code, reason.into())
}

fn authorize(state: &ApiState, headers: &axum::http::HeaderMap) -> Result<Arc<Admin>, Refusal> {
    let Some(admin) = state.admin.clone() else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "the mutating endpoints are off: set api.token (or FEATHERFLOW_API_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), admin.token.as_bytes()) => Ok(admin),
        _ => Err(refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")),
    }
}

/// Whether `given` equals `expected`, in a time that tells nothing about
/// where they differ: every byte of `expected` is compared (against
/// `given` read cyclically, so `given`'s length does not change the loop
/// either) and the differences are OR-ed together, never branched on. The
/// time depends only on `expected`'s length; a length mismatch is folded
/// into the same result.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if given.is_empty() {
        // Only the caller's own input decides this branch.
        return expected.is_empty();
    }
    let mut diff = given.len() ^ expected.len();
    for (i, &e) in expected.iter().enumerate() {
        // `black_box`: the optimizer may not turn the fold into an early exit.
        diff = std::hint::black_box(diff | usize::from(given[i % given.len()] ^ e));
    }
    diff == 0
}

/// Why `name` can't name a plugin file, if it can't: it must be 1 to
/// [`MAX_PLUGIN_NAME`] characters of `[A-Za-z0-9_-]`.
fn check_plugin_name(name: &str) -> Result<(), String> {
    const RULE: &str = "a plugin name is 1-64 characters of A-Z, a-z, 0-9, '_' and '-' (it names the file \
                        {name}.wasm in the plugin directory)";
    if name.is_empty() {
        return Err(format!("the plugin name is empty: {RULE}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!("the plugin name holds {c:?}: {RULE}"));
    }
    if name.len() > MAX_PLUGIN_NAME {
        return Err(format!("the plugin name is {} characters long: {RULE}", name.len()));
    }
    Ok(())
}

fn plugin_file(admin: &Admin, name: &str) -> Result<std::path::PathBuf, Refusal> {
    check_plugin_name(name).map_err(|reason| refuse(StatusCode::BAD_REQUEST, reason))?;
    Ok(admin.plugins_dir.join(format!("{name}.wasm")))
}

/// The admin behind a valid token and the file `name` deploys to, or the
/// response that refuses the request.
fn authorized_file(
    state: &ApiState,
    headers: &axum::http::HeaderMap,
    name: &str,
) -> Result<(Arc<Admin>, std::path::PathBuf), Refusal> {
    let admin = authorize(state, headers)?;
    let path = plugin_file(&admin, name)?;
    Ok((admin, path))
}

/// The body of an upload, at most `limit` bytes; 413 past it (at once if
/// `Content-Length` says so), 400 if the client breaks off.
async fn read_upload(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Vec<u8>, Refusal> {
    use axum::body::HttpBody;
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than the limit of {} MiB ({limit} bytes) for a plugin",
                limit >> 20
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(0, |n| n.min(limit as u64) as usize);
    let mut bytes = Vec::with_capacity(capacity);
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("cannot read the upload: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Query of `PUT /api/plugins/{name}`.
#[derive(Debug, Default, serde::Deserialize)]
struct DeployQuery {
    /// Drop the view's state with this deploy (a new state version without
    /// a migration, or a changed window).
    #[serde(default)]
    reset: bool,
}

/// `PUT /api/plugins/{name}[?reset=true]` with the component as the body
/// (at most [`MAX_UPLOAD_BYTES`], else 413): validated now (422 with the
/// reason if refused), then deployed by the watcher. The body is read only
/// once the token and the name are checked.
async fn upload(
    State(state): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<DeployQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let (admin, path) = match authorized_file(&state, &headers, &name) {
        Ok(ok) => ok,
        Err(r) => return r.into_response(),
    };
    let body = match read_upload(&headers, body, MAX_UPLOAD_BYTES).await {
        Ok(body) => axum::body::Bytes::from(body),
        Err(r) => return r.into_response(),
    };
    let checked = {
        let admin = admin.clone();
        let body = body.clone();
        tokio::task::spawn_blocking(move || admin.engine.load(&body, &format!("upload {name}"), admin.limits)).await
    };
    let plugin = match checked {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    // The reset marker first, so that the watcher sees both together.
    let marker = crate::plugin::watch::reset_marker(&path);
    let written = if query.reset {
        std::fs::write(&marker, b"")
    } else {
        Ok(())
    };
    // Write beside, then rename: the watcher never sees a partial file.
    let tmp = path.with_extension("wasm.upload");
    if let Err(e) = written
        .and_then(|_| std::fs::write(&tmp, &body))
        .and_then(|_| std::fs::rename(&tmp, &path))
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write {}: {e}\n", path.display()),
        )
            .into_response();
    }
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"file": path.display().to_string(), "view": plugin.declaration.view, "version": plugin.declaration.version, "sha256": plugin.hash, "reset": query.reset})),
    )
        .into_response()
}

/// `DELETE /api/plugins/{name}`: remove the file; the watcher stops the view.
async fn remove(
    State(state): State<ApiState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (_, path) = match authorized_file(&state, &headers, &name) {
        Ok(ok) => ok,
        Err(r) => return r.into_response(),
    };
    match std::fs::remove_file(&path) {
        Ok(()) => (StatusCode::ACCEPTED, format!("removed {}\n", path.display())).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, format!("no {}\n", path.display())).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn bad_records(State(state): State<ApiState>) -> Json<Vec<crate::engine::BadSample>> {
    Json(snapshot(&state).engine.recent_bad.into_iter().collect())
}

async fn history(State(state): State<ApiState>) -> Json<Vec<crate::engine::SwapRecord>> {
    Json(snapshot(&state).history)
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let body = render_metrics(&snapshot(&state), &state.redis, crate::clock::now_ms());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Prometheus text format. Metric names live here and only here.
pub fn render_metrics(s: &Status, r: &RedisStats, now_ms: i64) -> String {
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP featherflow_{name} {help}\n# TYPE featherflow_{name} {kind}");
    };
    metric("records_read_total", "counter", "Records read from the source.");
    metric("events_total", "counter", "Valid events.");
    metric("bad_records_total", "counter", "Bad records by reason (dead-lettered).");
    metric("late_events_total", "counter", "Late events per view.");
    metric("windows_fired_total", "counter", "Windows fired per view.");
    metric("plugin_errors_total", "counter", "Failed plugin calls per view.");
    metric(
        "plugin_instance_recycles_total",
        "counter",
        "Plugin instances replaced per view because their memory passed the high-water mark (3/4 of the plugin's memory limit).",
    );
    metric(
        "plugin_memory_limit_bytes",
        "gauge",
        "Per view: the plugin instance's memory limit (its own, or plugins.memory-limit-mib).",
    );
    metric("plugin_calls_total", "counter", "Plugin calls per view.");
    metric("plugin_seconds_total", "counter", "Time in plugin calls per view.");
    metric(
        "plugin_call_seconds",
        "histogram",
        "Plugin call (batch) latency per view.",
    );
    metric(
        "dead_lettered_total",
        "counter",
        "Events and windows dead-lettered after plugin failures, per view.",
    );
    metric(
        "view_disabled",
        "gauge",
        "1 if the view was disabled after repeated failures.",
    );
    metric("open_states", "gauge", "Open window parts per view.");
    metric(
        "watermark_ms",
        "gauge",
        "Watermark per partition (and overall, partition=\"all\").",
    );
    metric(
        "watermark_lag_seconds",
        "gauge",
        "Wall clock minus watermark, per partition.",
    );
    metric("consumer_lag", "gauge", "End offset minus position, per partition.");
    metric(
        "partition_records_per_second",
        "gauge",
        "Records read per second, per partition with an engine core of its own (kafka.assignment = \"group\").",
    );
    metric(
        "partition_open_states",
        "gauge",
        "Open window parts, per partition with an engine core of its own.",
    );
    metric(
        "partition_restore_seconds",
        "gauge",
        "How long restoring the partition's checkpoint took when it was assigned here.",
    );
    metric(
        "member_info",
        "gauge",
        "1, labelled with how this engine gets its partitions and its name in the group.",
    );
    metric("checkpoints_total", "counter", "Completed checkpoints retained.");
    metric("checkpoint_duration_ms", "gauge", "Duration of the last checkpoint.");
    metric("checkpoint_size_bytes", "gauge", "Size of the last checkpoint.");
    metric(
        "checkpoint_pause_ms",
        "gauge",
        "Event-loop pause of the last checkpoint.",
    );
    metric(
        "checkpoint_age_seconds",
        "gauge",
        "Age of the last completed checkpoint.",
    );
    metric("redis_keys_written_total", "counter", "Keys written to Redis.");
    metric(
        "redis_older_windows_skipped_total",
        "counter",
        "Writes Redis skipped because the key held a newer window (a replay after a restore, or another engine).",
    );
    metric("redis_retries_total", "counter", "Redis write retries.");
    metric("redis_write_seconds", "histogram", "Redis batch write latency.");
    metric("kafka_errors_total", "counter", "Kafka poll errors.");
    metric(
        "keys",
        "gauge",
        "Keys the engine holds: with open windows, or seen since the last reclaim.",
    );
    metric(
        "keys_reclaimed_total",
        "counter",
        "Keys forgotten because no window of theirs was open any more (their ids are reused).",
    );
    metric(
        "watermark_wall_clock_advances_total",
        "counter",
        "Times the watermark advanced with the wall clock (every partition idle, time.idle-watermark = \"wall-clock\").",
    );
    metric(
        "view_newest_window_age_seconds",
        "gauge",
        "Per view: wall clock minus the end of the newest window written to Redis.",
    );
    metric(
        "view_last_write_age_seconds",
        "gauge",
        "Per view: time since Redis last acknowledged a key of the view.",
    );
    metric(
        "fire_to_redis_seconds",
        "histogram",
        "Per view: from a window firing to its key acknowledged by Redis.",
    );
    let e = &s.engine;
    let _ = writeln!(o, "featherflow_records_read_total {}", e.records_read);
    let _ = writeln!(o, "featherflow_events_total {}", e.events);
    for (reason, n) in &e.bad_by_reason {
        let _ = writeln!(o, "featherflow_bad_records_total{{reason=\"{reason}\"}} {n}");
    }
    for v in &s.views {
        let l = format!("view=\"{}\"", v.view);
        let st = &v.stats;
        let _ = writeln!(o, "featherflow_late_events_total{{{l}}} {}", st.late);
        let _ = writeln!(o, "featherflow_windows_fired_total{{{l}}} {}", st.windows_fired);
        let _ = writeln!(o, "featherflow_plugin_errors_total{{{l}}} {}", st.plugin_errors);
        let _ = writeln!(
            o,
            "featherflow_plugin_instance_recycles_total{{{l}}} {}",
            st.instance_recycles
        );
        let _ = writeln!(
            o,
            "featherflow_plugin_memory_limit_bytes{{{l}}} {}",
            v.memory_limit_mib << 20
        );
        let _ = writeln!(o, "featherflow_plugin_calls_total{{{l}}} {}", st.plugin_calls);
        let _ = writeln!(
            o,
            "featherflow_plugin_seconds_total{{{l}}} {}",
            st.plugin_nanos as f64 / 1e9
        );
        let _ = writeln!(o, "featherflow_dead_lettered_total{{{l}}} {}", st.dead_lettered);
        let _ = writeln!(o, "featherflow_view_disabled{{{l}}} {}", v.disabled.is_some() as u8);
        let _ = writeln!(o, "featherflow_open_states{{{l}}} {}", v.open_states);
        let mut cumulative = 0;
        for (i, bound) in crate::engine::PLUGIN_LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += st.plugin_latency_buckets[i];
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                format!("{}", bound / 1e6)
            };
            let _ = writeln!(
                o,
                "featherflow_plugin_call_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            o,
            "featherflow_plugin_call_seconds_sum{{{l}}} {}",
            st.plugin_nanos as f64 / 1e9
        );
        let _ = writeln!(o, "featherflow_plugin_call_seconds_count{{{l}}} {}", st.plugin_calls);
    }
    let _ = writeln!(
        o,
        "featherflow_watermark_wall_clock_advances_total {}",
        s.engine.wall_clock_advances
    );
    let _ = writeln!(o, "featherflow_keys {}", s.engine.keys);
    let _ = writeln!(o, "featherflow_keys_reclaimed_total {}", s.engine.keys_reclaimed);
    let _ = writeln!(o, "featherflow_watermark_ms{{partition=\"all\"}} {}", s.watermark);
    for p in &s.partitions {
        let _ = writeln!(
            o,
            "featherflow_watermark_ms{{partition=\"{}\"}} {}",
            p.partition, p.watermark
        );
        if p.watermark > i64::MIN {
            let _ = writeln!(
                o,
                "featherflow_watermark_lag_seconds{{partition=\"{}\"}} {}",
                p.partition,
                (now_ms - p.watermark) as f64 / 1000.0
            );
        }
        if p.end >= 0 {
            let _ = writeln!(
                o,
                "featherflow_consumer_lag{{partition=\"{}\"}} {}",
                p.partition,
                (p.end - p.position).max(0)
            );
        }
        if let Some(r) = p.records_per_s {
            let _ = writeln!(
                o,
                "featherflow_partition_records_per_second{{partition=\"{}\"}} {r}",
                p.partition
            );
        }
        if let Some(n) = p.open_states {
            let _ = writeln!(
                o,
                "featherflow_partition_open_states{{partition=\"{}\"}} {n}",
                p.partition
            );
        }
        if let Some(ms) = p.restore_ms {
            let _ = writeln!(
                o,
                "featherflow_partition_restore_seconds{{partition=\"{}\"}} {}",
                p.partition,
                ms as f64 / 1000.0
            );
        }
    }
    let m = &s.member;
    let _ = writeln!(
        o,
        "featherflow_member_info{{assignment=\"{}\",group=\"{}\",instance=\"{}\"}} 1",
        label(&m.assignment),
        label(&m.group),
        label(&m.instance)
    );
    let _ = writeln!(o, "featherflow_checkpoints_total {}", s.checkpoints.len());
    if let Some(c) = s.checkpoints.last() {
        let _ = writeln!(o, "featherflow_checkpoint_duration_ms {}", c.duration_ms);
        let _ = writeln!(o, "featherflow_checkpoint_size_bytes {}", c.size_bytes);
        let _ = writeln!(
            o,
            "featherflow_checkpoint_age_seconds {}",
            (now_ms - c.created_ms) as f64 / 1000.0
        );
    }
    let _ = writeln!(o, "featherflow_checkpoint_pause_ms {}", s.last_checkpoint_pause_ms);
    let _ = writeln!(
        o,
        "featherflow_redis_keys_written_total {}",
        r.keys_written.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "featherflow_redis_older_windows_skipped_total {}",
        r.older_windows_skipped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        o,
        "featherflow_redis_retries_total {}",
        r.retries.load(Ordering::Relaxed)
    );
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BOUNDS_MS.iter().enumerate() {
        cumulative += r.latency_buckets[i].load(Ordering::Relaxed);
        let le = if bound.is_infinite() {
            "+Inf".to_string()
        } else {
            format!("{}", bound / 1000.0)
        };
        let _ = writeln!(o, "featherflow_redis_write_seconds_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(
        o,
        "featherflow_redis_write_seconds_sum {}",
        r.write_nanos.load(Ordering::Relaxed) as f64 / 1e9
    );
    let _ = writeln!(
        o,
        "featherflow_redis_write_seconds_count {}",
        r.batches.load(Ordering::Relaxed)
    );
    let _ = writeln!(o, "featherflow_kafka_errors_total {}", s.kafka_errors);
    let views = r.views.lock().unwrap_or_else(|e| e.into_inner());
    for (view, f) in views.iter() {
        let l = format!("view=\"{view}\"");
        let _ = writeln!(
            o,
            "featherflow_view_newest_window_age_seconds{{{l}}} {}",
            (now_ms - f.newest_window_end) as f64 / 1000.0
        );
        let _ = writeln!(
            o,
            "featherflow_view_last_write_age_seconds{{{l}}} {}",
            (now_ms - f.last_write_ms) as f64 / 1000.0
        );
    }
    for (view, f) in views.iter() {
        let l = format!("view=\"{view}\"");
        let mut cumulative = 0;
        for (i, bound) in FIRE_TO_ACK_BOUNDS_MS.iter().enumerate() {
            cumulative += f.fire_to_ack_buckets[i];
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                format!("{}", bound / 1000.0)
            };
            let _ = writeln!(
                o,
                "featherflow_fire_to_redis_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            o,
            "featherflow_fire_to_redis_seconds_sum{{{l}}} {}",
            f.fire_to_ack_sum_s
        );
        let _ = writeln!(o, "featherflow_fire_to_redis_seconds_count{{{l}}} {cumulative}");
    }
    o
}

/// The API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `api.listen` is not an address: retrying cannot help.
    #[error("api.listen {listen:?}: not an address like 127.0.0.1:8081: {reason}")]
    Address { listen: String, reason: String },
    /// The address is taken or the server cannot start; retrying later can.
    #[error("api.listen {listen}: {error}")]
    Io {
        listen: String,
        #[source]
        error: std::io::Error,
    },
}

/// Serve the API on `listen` until the process exits.
pub fn spawn(listen: &str, state: ApiState) -> Result<(), ApiError> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e: std::net::AddrParseError| ApiError::Address {
            listen: listen.to_string(),
            reason: e.to_string(),
        })?;
    let io = |error| ApiError::Io {
        listen: listen.to_string(),
        error,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io)?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(io)?;
    tracing::info!(%addr, "dashboard and API listening (http://{addr}/)");
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            rt.block_on(async move {
                if let Err(e) = axum::serve(listener, router(state)).await {
                    tracing::error!(error = %e, "API server stopped");
                }
            });
        })
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn state() -> ApiState {
        let mut s = Status {
            topic: "ecommerce-events".into(),
            sources_assigned: true,
            started_ms: crate::clock::now_ms(),
            checkpoint_interval_ms: 30_000,
            ..Status::default()
        };
        s.engine.records_read = 7;
        s.engine.bad_by_reason.insert("not_json", 2);
        s.engine.recent_bad.push_back(crate::engine::BadSample {
            reason: "not_json",
            partition: 3,
            offset: 17,
            raw: "not json at all".into(),
        });
        s.views.push(ViewStatus {
            view: "user_features".into(),
            ..ViewStatus::default()
        });
        s.member = Member {
            assignment: "group".into(),
            group: "shop \"eu\"".into(),
            instance: "host-1:42".into(),
            host: "host-1".into(),
            pid: 42,
        };
        s.partitions.push(PartitionStatus {
            partition: 3,
            watermark: 1_000,
            idle: false,
            position: 10,
            end: 12,
            records_per_s: Some(5.0),
            open_states: Some(4),
            restore_ms: Some(250),
        });
        ApiState {
            status: Arc::new(Mutex::new(s)),
            redis: Arc::new(RedisStats::default()),
            admin: None,
        }
    }

    async fn get(path: &str) -> (StatusCode, String) {
        let resp = router(state())
            .oneshot(axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let code = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let (code, body) = get("/metrics").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("featherflow_records_read_total 7"), "{body}");
        assert!(
            body.contains("featherflow_bad_records_total{reason=\"not_json\"} 2"),
            "{body}"
        );
        assert!(
            body.contains("featherflow_windows_fired_total{view=\"user_features\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("featherflow_redis_write_seconds_bucket{le=\"+Inf\"} 0"),
            "{body}"
        );
        assert!(
            body.contains("featherflow_plugin_call_seconds_bucket{view=\"user_features\",le=\"+Inf\"} 0"),
            "{body}"
        );
        // A group member: per-partition figures, and who it is (labels escaped).
        for line in [
            "featherflow_consumer_lag{partition=\"3\"} 2",
            "featherflow_partition_records_per_second{partition=\"3\"} 5",
            "featherflow_partition_open_states{partition=\"3\"} 4",
            "featherflow_partition_restore_seconds{partition=\"3\"} 0.25",
            "featherflow_member_info{assignment=\"group\",group=\"shop \\\"eu\\\"\",instance=\"host-1:42\"} 1",
        ] {
            assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
        }
        let (_, overview) = get("/api/overview").await;
        let v: serde_json::Value = serde_json::from_str(&overview).unwrap();
        assert_eq!(v["member"]["instance"], "host-1:42", "{overview}");
        assert_eq!(v["partitions"], serde_json::json!([3]), "{overview}");
    }

    #[tokio::test]
    async fn health_and_json_api() {
        assert_eq!(get("/health/live").await, (StatusCode::OK, "ok".into()));
        let (code, body) = get("/health/ready").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = get("/api/bad-records").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("\"offset\":17") && body.contains("not json at all"),
            "{body}"
        );
        let (code, body) = get("/api/plugins").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("user_features"));
        let (code, body) = get("/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("<title>featherflow</title>"));
        assert_eq!(get("/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn freshness_per_view_is_in_the_metrics_and_the_overview() {
        let state = state();
        let mut f = crate::sink::redis::ViewFreshness {
            newest_window_end: 1_000_000,
            last_write_ms: 1_500_000,
            keys: 3,
            ..Default::default()
        };
        // Two keys within 10 ms of firing, one after 300 ms.
        f.fire_to_ack_buckets[0] = 2;
        f.fire_to_ack_buckets[4] = 1;
        f.fire_to_ack_sum_s = 0.31;
        state.redis.views.lock().unwrap().insert("user_features".into(), f);
        let body = render_metrics(&snapshot(&state), &state.redis, 2_000_000);
        for line in [
            "featherflow_view_newest_window_age_seconds{view=\"user_features\"} 1000",
            "featherflow_view_last_write_age_seconds{view=\"user_features\"} 500",
            "featherflow_fire_to_redis_seconds_bucket{view=\"user_features\",le=\"0.01\"} 2",
            "featherflow_fire_to_redis_seconds_bucket{view=\"user_features\",le=\"0.25\"} 2",
            "featherflow_fire_to_redis_seconds_bucket{view=\"user_features\",le=\"0.5\"} 3",
            "featherflow_fire_to_redis_seconds_bucket{view=\"user_features\",le=\"+Inf\"} 3",
            "featherflow_fire_to_redis_seconds_count{view=\"user_features\"} 3",
        ] {
            assert!(body.lines().any(|l| l == line), "missing {line}:\n{body}");
        }
        let json = freshness(&state.redis, 2_000_000);
        assert_eq!(json["user_features"]["fire_to_redis_p50_ms_at_most"], 10.0);
        assert_eq!(json["user_features"]["fire_to_redis_p99_ms_at_most"], 500.0);
        assert_eq!(json["user_features"]["newest_window_age_s"], 1000.0);
    }

    #[tokio::test]
    async fn a_failing_cause_makes_the_engine_not_ready_and_says_which() {
        let state = state();
        state.status.lock().unwrap().failing = vec!["the source".into()];
        let resp = router(state)
            .oneshot(
                axum::http::Request::get("/health/ready")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("\"failing\":[\"the source\"]"));
    }

    const TOKEN: &str = "s3cret-t0ken";

    /// [`state`] with the mutating endpoints on, deploying into `dir`.
    fn admin_state(dir: &std::path::Path) -> ApiState {
        ApiState {
            admin: Some(Arc::new(Admin {
                token: TOKEN.into(),
                plugins_dir: dir.to_path_buf(),
                engine: crate::plugin::PluginEngine::new().unwrap(),
                limits: crate::plugin::Limits::default(),
            })),
            ..state()
        }
    }

    fn request(method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> axum::http::Request<axum::body::Body> {
        let mut r = axum::http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        r.body(axum::body::Body::from(body)).unwrap()
    }

    async fn send(state: ApiState, req: axum::http::Request<axum::body::Body>) -> (StatusCode, String) {
        let resp = router(state).oneshot(req).await.unwrap();
        let code = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// Every file under `dir`, recursively.
    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(files_under(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    #[tokio::test]
    async fn uploads_past_the_limit_get_413() {
        let dir = tempfile::tempdir().unwrap();
        let state = admin_state(dir.path());
        // One byte too many, without a Content-Length: refused while reading.
        let (code, body) = send(
            state.clone(),
            request("PUT", "/api/plugins/big", Some(TOKEN), vec![0; MAX_UPLOAD_BYTES + 1]),
        )
        .await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(
            body.contains("larger than the limit of 16 MiB (16777216 bytes)"),
            "{body}"
        );
        // A Content-Length past the limit: refused before reading.
        let mut req = request("PUT", "/api/plugins/big", Some(TOKEN), Vec::new());
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, (1u64 << 40).to_string().parse().unwrap());
        let (code, body) = send(state.clone(), req).await;
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        // At the limit: read, then refused as not a component.
        let (code, body) = send(
            state.clone(),
            request("PUT", "/api/plugins/big", Some(TOKEN), vec![0; MAX_UPLOAD_BYTES]),
        )
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        // The token is checked first: a stranger's upload is refused for that.
        let (code, _) = send(
            state,
            request("PUT", "/api/plugins/big", None, vec![0; MAX_UPLOAD_BYTES + 1]),
        )
        .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert_eq!(files_under(dir.path()), Vec::<std::path::PathBuf>::new());
    }

    #[tokio::test]
    async fn a_plugin_within_the_limit_is_deployed() {
        let guest =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/wasm/user_activity.wasm");
        let wasm = std::fs::read(&guest)
            .unwrap_or_else(|e| panic!("{}: {e}: build the guests first with `make guests`", guest.display()));
        let dir = tempfile::tempdir().unwrap();
        let (code, body) = send(
            admin_state(dir.path()),
            request("PUT", "/api/plugins/user_activity", Some(TOKEN), wasm.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        assert_eq!(std::fs::read(dir.path().join("user_activity.wasm")).unwrap(), wasm);
    }

    #[tokio::test]
    async fn the_bearer_token_must_match_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let state = admin_state(dir.path());
        for token in [
            None,
            Some(""),
            Some("s3cret-t0ke"),
            Some("s3cret-t0kenX"),
            Some("S3cret-t0ken"),
            Some("s3cret-t0keN"),
        ] {
            let (code, body) = send(state.clone(), request("DELETE", "/api/plugins/x", token, Vec::new())).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        }
        let (code, body) = send(state, request("DELETE", "/api/plugins/x", Some(TOKEN), Vec::new())).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    }

    #[test]
    fn constant_time_eq_compares_everything() {
        let token = b"s3cret-t0ken";
        assert!(constant_time_eq(token, token));
        assert!(constant_time_eq(b"", b""));
        for other in [
            &b"S3cret-t0ken"[..],
            b"s3cret-t0keN",
            b"s3cret-t0ke",
            b"s3cret-t0ken!",
            b"",
            b"s",
            // Read cyclically, these match every byte: only the length differs.
            b"s3cret-t0kens3cret-t0ken",
            b"s3cret-t0kens",
        ] {
            assert!(!constant_time_eq(other, token), "{other:?}");
            assert!(!constant_time_eq(token, other), "{other:?}");
        }
        assert!(!constant_time_eq(b"ab", b"abab"));
        assert!(!constant_time_eq(b"abab", b"ab"));
    }

    #[test]
    fn plugin_names_are_checked() {
        let long = "a".repeat(MAX_PLUGIN_NAME + 1);
        for bad in [
            "../x",
            "a/b",
            ".hidden",
            "x.wasm",
            "..",
            ".",
            "",
            "a\\b",
            "a b",
            "a\0b",
            "\u{e9}t\u{e9}",
            "\u{540d}",
            "x\n",
            &long,
        ] {
            let reason = check_plugin_name(bad).expect_err(bad);
            assert!(
                reason.contains("1-64 characters of A-Z, a-z, 0-9, '_' and '-'"),
                "{reason}"
            );
        }
        for good in ["user_activity", "A-b_9", "x", "-", &"a".repeat(MAX_PLUGIN_NAME)] {
            assert_eq!(check_plugin_name(good), Ok(()), "{good}");
        }
    }

    /// Names that would leave the plugin directory (or hide in it) are
    /// refused with 400, on both endpoints, and nothing is written.
    #[tokio::test]
    async fn traversal_attempts_get_400() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::write(dir.path().join("x.wasm"), b"outside").unwrap();
        let state = admin_state(&plugins);
        let long = "a".repeat(MAX_PLUGIN_NAME + 1);
        for name in [
            "..%2Fx",
            "..%2fx",
            "a%2Fb",
            "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            "..%5Cx",
            ".hidden",
            "x.wasm",
            "..",
            "%2E%2E",
            "%2E",
            "%C3%A9",
            "a%00b",
            "a%20b",
            &long,
        ] {
            for method in ["PUT", "DELETE"] {
                let uri = format!("/api/plugins/{name}");
                let (code, body) = send(state.clone(), request(method, &uri, Some(TOKEN), b"junk".to_vec())).await;
                assert_eq!(code, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
                assert!(body.contains("plugin name"), "{method} {uri}: {body}");
            }
        }
        assert_eq!(files_under(&plugins), Vec::<std::path::PathBuf>::new());
        assert_eq!(std::fs::read(dir.path().join("x.wasm")).unwrap(), b"outside");
    }

    #[tokio::test]
    async fn mutating_endpoints_are_off_without_a_token() {
        let resp = router(state())
            .oneshot(
                axum::http::Request::delete("/api/plugins/x")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
}
