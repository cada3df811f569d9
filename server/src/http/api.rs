//! The Pusher HTTP API (`/apps/{app_id}/…`): publish events, query channels
//! and users, terminate a user's connections.
//!
//! Every request is signed like Pusher's: query parameters `auth_key`,
//! `auth_timestamp`, `auth_version`, `body_md5` (when there is a body) and
//! `auth_signature = hex(HMAC-SHA256(secret, METHOD "\n" PATH "\n" QUERY))`,
//! where QUERY is every other parameter, keys lowercased, sorted by key,
//! joined as `k=v` with `&`. Event `data` is routed as raw JSON text, never
//! decoded, never logged.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use md5::{Digest, Md5};
use sealcast_core::protocol::history::{HistoryErrorCode, Read};
use sealcast_core::protocol::{ChannelKind, ChannelName, auth};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::app::{App, Publish, PublishError};
use crate::state::ServerState;

/// A response with a status and a JSON or text body.
pub type HttpResponse = Response<Full<Bytes>>;

/// A request whose app and query signature were verified (before its
/// body was read).
#[derive(Debug)]
pub struct Authenticated {
    app: Arc<App>,
    /// Query parameters, names lower-cased.
    params: Vec<(String, String)>,
    /// The path segments after `/apps/{id}/`, percent-decoded.
    segments: Vec<String>,
}

/// Checks who is asking: the app id, the query parameters and the
/// signature (which covers `body_md5`, so the body can be checked after it
/// is read). Refusals are the response to send.
pub fn authenticate(
    state: &ServerState,
    method: &Method,
    path: &str,
    query: &str,
) -> Result<Authenticated, Box<HttpResponse>> {
    state.metrics.http_requests.inc();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some(app) = segments.get(1).and_then(|id| state.app_by_id(id)) else {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "unknown app id")));
    };
    // Parameters are signed with lower-cased names, so they are looked up
    // that way too; a name given twice (in any case) is refused rather than
    // have the signature cover one value and the handler use another.
    let params = query_params(query).map_err(|message| Box::new(text(StatusCode::BAD_REQUEST, message)))?;
    verify_signature(state, &app, method, path, &params)
        .map_err(|message| Box::new(text(StatusCode::UNAUTHORIZED, message)))?;
    // The raw path was signed; the handlers see its segments decoded (a
    // user id such as `alice smith` arrives as `alice%20smith`).
    let segments =
        segments[2..].iter().map(|s| percent_decode(s)).collect::<Option<Vec<String>>>().ok_or_else(
            || Box::new(text(StatusCode::BAD_REQUEST, "path segments must be percent-encoded UTF-8")),
        )?;
    Ok(Authenticated { app, params, segments })
}

/// Handles an authenticated `/apps/…` request with its body.
pub fn handle(state: &ServerState, request: Authenticated, method: &Method, body: &[u8]) -> HttpResponse {
    let Authenticated { app, params, segments } = request;
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if !body.is_empty() && param("body_md5") != Some(auth::hex(&Md5::digest(body)).as_str()) {
        return text(StatusCode::UNAUTHORIZED, "body_md5 does not match the body");
    }
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["events"]) => publish(state, &app, body),
        (&Method::POST, ["batch_events"]) => batch(state, &app, body),
        (&Method::GET, ["channels"]) => {
            channels(&app, param("filter_by_prefix").unwrap_or(""), param("info").unwrap_or(""))
        }
        (&Method::GET, ["channels", name]) => channel(&app, name, param("info").unwrap_or("")),
        (&Method::GET, ["channels", name, "users"]) => users(&app, name),
        (&Method::GET, ["channels", name, "history"]) => history(&app, name, &param),
        (&Method::POST, ["users", user_id, "terminate_connections"]) => {
            let closed = app.terminate_user(user_id, &state.metrics);
            tracing::info!(app = %app.id, closed, "terminated a user's connections");
            // Pusher answers `{}`; the count (connections on this node: in
            // cluster mode the other nodes close theirs too) is additive.
            ok(json!({"connections_closed": closed}))
        }
        _ => text(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// The query's parameters with lower-cased names; an error when a name
/// appears twice.
fn query_params(query: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let name = name.to_lowercase();
        if params.iter().any(|(seen, _)| *seen == name) {
            return Err("a query parameter is given twice");
        }
        params.push((name, value.into_owned()));
    }
    Ok(params)
}

/// `%XX`-decodes a path segment (no `+` → space: that is a query rule);
/// `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn verify_signature(
    state: &ServerState,
    app: &App,
    method: &Method,
    path: &str,
    params: &[(String, String)],
) -> Result<(), &'static str> {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    // One copy: a reload swapping key and secret is never seen half-way.
    let config = app.config();
    let signature = get("auth_signature").ok_or("missing auth_signature")?;
    if get("auth_key") != Some(config.key.as_str()) {
        return Err("auth_key does not name this app");
    }
    if get("auth_version") != Some("1.0") {
        return Err("auth_version must be 1.0");
    }
    let timestamp: u64 =
        get("auth_timestamp").and_then(|t| t.parse().ok()).ok_or("missing or invalid auth_timestamp")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(timestamp) > state.config.http_timestamp_window.as_secs() {
        return Err("auth_timestamp is outside the allowed window: check the clock");
    }
    let mut signed: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "auth_signature").collect();
    signed.sort();
    let query_string = signed.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let to_sign = format!("{method}\n{path}\n{query_string}");
    let expected = auth::hmac_hex(&config.secret, to_sign.as_bytes());
    if !auth::signatures_equal(signature, &expected) {
        return Err("invalid auth_signature");
    }
    Ok(())
}

/// One event to publish (the `events` body, or an element of `batch`).
#[derive(Deserialize)]
struct EventRequest {
    name: String,
    data: Box<RawValue>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
}

/// A refused request: status and a message for the caller.
struct Refused(StatusCode, String);

impl Refused {
    fn bad_request(message: impl Into<String>) -> Refused {
        Refused(StatusCode::BAD_REQUEST, message.into())
    }

    fn into_response(self) -> HttpResponse {
        text(self.0, &self.1)
    }
}

fn publish(state: &ServerState, app: &App, body: &[u8]) -> HttpResponse {
    match serde_json::from_slice::<EventRequest>(body) {
        Ok(event) => match send_events(state, app, std::slice::from_ref(&event)) {
            Ok(()) => ok(json!({})),
            Err(refused) => refused.into_response(),
        },
        Err(err) => text(StatusCode::BAD_REQUEST, &format!("invalid event body: {}", classify(&err))),
    }
}

fn batch(state: &ServerState, app: &App, body: &[u8]) -> HttpResponse {
    #[derive(Deserialize)]
    struct Batch {
        batch: Vec<EventRequest>,
    }
    let batch = match serde_json::from_slice::<Batch>(body) {
        Ok(batch) => batch.batch,
        Err(err) => return text(StatusCode::BAD_REQUEST, &format!("invalid batch body: {}", classify(&err))),
    };
    if batch.len() > app.config().max_batch_size {
        return text(StatusCode::BAD_REQUEST, "too many events in the batch");
    }
    match send_events(state, app, &batch) {
        Ok(()) => ok(json!({ "batch": batch.iter().map(|_| json!({})).collect::<Vec<_>>() })),
        Err(refused) => refused.into_response(),
    }
}

fn validate_event(app: &App, event: &EventRequest) -> Result<Vec<ChannelName>, Refused> {
    let names: Vec<&String> = event.channels.iter().flatten().chain(event.channel.iter()).collect();
    if names.is_empty() {
        return Err(Refused::bad_request("an event needs `channels` or `channel`"));
    }
    let config = app.config();
    if names.len() > config.max_event_channels {
        return Err(Refused::bad_request("too many channels in one event"));
    }
    if event.name.is_empty() || event.name.len() > 200 {
        return Err(Refused::bad_request("event names are 1 to 200 characters"));
    }
    if event.data.get().len() > config.max_event_payload_bytes {
        return Err(Refused(StatusCode::PAYLOAD_TOO_LARGE, "event data over the payload limit".into()));
    }
    names
        .into_iter()
        .map(|name| ChannelName::parse(name).map_err(|err| Refused::bad_request(err.to_string())))
        .collect()
}

/// Validates every event, then publishes all of them or none: a 200 means
/// every frame was delivered here and taken by the cluster bus.
fn send_events(state: &ServerState, app: &App, events: &[EventRequest]) -> Result<(), Refused> {
    let started = Instant::now();
    let mut publishes = Vec::new();
    for event in events {
        let channels = validate_event(app, event)?;
        // Pusher's `data` is a string; other JSON is carried as its text.
        let data = if event.data.get().starts_with('"') {
            event.data.clone()
        } else {
            let quoted = serde_json::Value::String(event.data.get().to_owned()).to_string();
            RawValue::from_string(quoted).map_err(|_| Refused::bad_request("event data is not JSON"))?
        };
        for channel in channels {
            publishes.push(Publish {
                channel: channel.as_str().to_owned(),
                event: event.name.clone(),
                data: data.clone(),
                except: event.socket_id.clone(),
            });
        }
    }
    app.publish_all(publishes, &state.metrics).map_err(|err| match err {
        PublishError::Bus(busy) => {
            Refused(StatusCode::SERVICE_UNAVAILABLE, format!("{busy}: nothing was published; retry"))
        }
        PublishError::History(err) => {
            tracing::error!(app = %app.id, error = %err, "history store failed: a publish was refused");
            Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "history store unavailable: this event and the batch's later ones were not published; retry"
                    .into(),
            )
        }
    })?;
    state.metrics.fanout_latency.observe(started.elapsed());
    Ok(())
}

/// `GET /channels/{name}/history?limit=&since=&epoch=&before=`: a page
/// of the channel's history, as the WebSocket read answers it
/// (docs/history.md), within the app's read rate.
fn history<'a>(app: &App, name: &str, param: &impl Fn(&str) -> Option<&'a str>) -> HttpResponse {
    if ChannelName::parse(name).is_err() {
        return text(StatusCode::BAD_REQUEST, "invalid channel name");
    }
    let number = |key: &str| -> Result<Option<u64>, String> {
        param(key).map(|v| v.parse().map_err(|_| format!("`{key}` must be a number"))).transpose()
    };
    let read = (|| {
        let limit = number("limit")?.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let epoch = param("epoch").map(str::to_owned);
        Ok::<_, String>(Read {
            request_id: None,
            since: number("since")?,
            epoch,
            before: number("before")?,
            limit,
        })
    })();
    let read = match read {
        Ok(read) => read,
        Err(message) => return text(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(err) = read.check() {
        return text(StatusCode::BAD_REQUEST, &err.to_string());
    }
    match app.read_history(name, &read) {
        Ok(page) => match serde_json::to_value(&page) {
            Ok(body) => ok(body),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "could not encode the page"),
        },
        Err(err) => {
            let status = match err.code() {
                HistoryErrorCode::HistoryOff => StatusCode::NOT_FOUND,
                HistoryErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                HistoryErrorCode::Unavailable => {
                    tracing::error!(app = %app.id, error = %err, "history store failed on a read");
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            text(status, &err.to_string())
        }
    }
}

/// Largest `/channels` answer: a longer list is refused (narrow it with
/// `filter_by_prefix`) rather than truncated or built without bound.
pub const MAX_CHANNEL_LIST_BYTES: usize = 1024 * 1024;

fn channels(app: &App, prefix: &str, info: &str) -> HttpResponse {
    let want_users = info.split(',').any(|i| i == "user_count");
    let mut map = Map::new();
    let mut size = 0;
    for (name, channel) in app.channels(prefix) {
        let mut entry = Map::new();
        if let (true, Some(users)) = (want_users, channel.user_count) {
            entry.insert("user_count".into(), users.into());
        }
        // Name, quotes, colon, braces, comma, and a count of up to 20 digits.
        size += name.len() + 8 + if want_users { 36 } else { 0 };
        if size > MAX_CHANNEL_LIST_BYTES {
            return text(
                StatusCode::BAD_REQUEST,
                "the channel list is over 1 MiB: narrow it with filter_by_prefix",
            );
        }
        map.insert(name, Value::Object(entry));
    }
    ok(json!({ "channels": map }))
}

fn channel(app: &App, name: &str, info: &str) -> HttpResponse {
    let Ok(channel) = ChannelName::parse(name) else {
        return text(StatusCode::BAD_REQUEST, "invalid channel name");
    };
    let occupancy = app.channel(channel.as_str());
    let mut body = Map::new();
    body.insert("occupied".into(), occupancy.is_some().into());
    for item in info.split(',') {
        match item {
            "subscription_count" => {
                body.insert(
                    "subscription_count".into(),
                    occupancy.as_ref().map_or(0, |o| o.subscription_count).into(),
                );
            }
            "user_count" if channel.kind() == ChannelKind::Presence => {
                body.insert(
                    "user_count".into(),
                    occupancy.as_ref().and_then(|o| o.user_count).unwrap_or(0).into(),
                );
            }
            _ => {}
        }
    }
    ok(Value::Object(body))
}

fn users(app: &App, name: &str) -> HttpResponse {
    match ChannelName::parse(name) {
        Ok(channel) if channel.kind() == ChannelKind::Presence => {
            let users: Vec<Value> =
                app.users(channel.as_str()).into_iter().map(|id| json!({ "id": id })).collect();
            ok(json!({ "users": users }))
        }
        _ => text(StatusCode::BAD_REQUEST, "users are only listed for presence channels"),
    }
}

/// What is wrong with a request body, without its content: serde_json's
/// own messages can quote values (`invalid type: string "…"`), and event
/// data must never be echoed or logged.
fn classify(err: &serde_json::Error) -> String {
    let kind = match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
        serde_json::error::Category::Data => "a field is missing or has the wrong type",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{kind} (line {}, column {})", err.line(), err.column())
}

fn ok(body: Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response
}

/// The signed query string for an HTTP API request with `extra` query
/// parameters, as Pusher's server libraries build it (used by `sealcast
/// bench` to publish, and by the tests).
pub fn signed_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    timestamp: u64,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("auth_key".into(), key.into()),
        ("auth_timestamp".into(), timestamp.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        params.push(("body_md5".into(), auth::hex(&Md5::digest(body))));
    }
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    params.sort_by_key(|(k, v)| (k.to_lowercase(), v.clone()));
    // Names are lower-cased in the string to sign (Pusher's rule), and sent
    // as given.
    let join = |lower: bool| {
        let pair = |(k, v): &(String, String)| {
            if lower { format!("{}={v}", k.to_lowercase()) } else { format!("{k}={v}") }
        };
        params.iter().map(pair).collect::<Vec<_>>().join("&")
    };
    let signature = auth::hmac_hex(secret, format!("{method}\n{path}\n{}", join(true)).as_bytes());
    format!("{}&auth_signature={signature}", join(false))
}
