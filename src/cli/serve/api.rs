//! The HTTP API: its routes, each handler, and the JSON errors every refusal is.
//!
//! Every route is listed once, in [`routes`], with its method and path; the router is built
//! from that list, and a test holds the list against `docs/openapi.json`, so the document
//! and the server cannot drift apart.
//!
//! Handlers do no blocking work on the runtime's threads: the store is read on blocking
//! threads ([`App::read`]) and written by the writer thread, whose answers come back on
//! one-shot channels.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use http_body_util::BodyExt;
use mxprobe::address::Address;
use mxprobe::store::{DomainFacts, JobId, Store, StoreError};
use mxprobe::upload::{Column, Format, Item, Parser};
use mxprobe::{SubmitOptions, VerifyResult};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use super::App;
use super::auth::{Owner, Refused};
use super::feeder::Feed;
use super::limits::OverLimit;
use super::records::{cached_record, job_json, millis};
use super::tags::{MAX_LINE, Tag};
use super::writer::Op;
use crate::cli::fleet;

/// The API's routes: method, path, and the handler. The router is made of these alone.
///
/// Every handler but the upload's answers within [`HANDLER_DEADLINE`] (the results' handler
/// answers when their stream begins; the stream's own pace is the write deadline's business). An
/// upload takes as long as its body, whose every piece has the read deadline.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<App>>)> {
    let bounded = |route| within(HANDLER_DEADLINE, route);
    vec![
        (Method::GET, "/", bounded(get(page))),
        (Method::GET, "/healthz", bounded(get(healthz))),
        (Method::GET, "/metrics", bounded(get(metrics))),
        (Method::GET, "/openapi.json", bounded(get(openapi))),
        (Method::POST, "/v1/verify", bounded(post(verify))),
        (Method::POST, "/v1/jobs", post(create_job)),
        (Method::GET, "/v1/jobs", bounded(get(list_jobs))),
        (Method::GET, "/v1/jobs/{id}", bounded(get(show_job))),
        (Method::DELETE, "/v1/jobs/{id}", bounded(delete(cancel_job))),
        (Method::GET, "/v1/jobs/{id}/results", bounded(get(results))),
        (
            Method::GET,
            "/v1/domains/{domain}",
            bounded(get(show_domain)),
        ),
    ]
}

/// The most a bounded handler takes: the longest real-time wait (`timeout_ms` of at most
/// 120 s), and room to answer it. Past it the request is answered `503` — a backstop: no
/// handler is meant to reach it.
const HANDLER_DEADLINE: Duration = Duration::from_secs(150);

/// `route` answered `503` (as JSON, by [`explain_deadline`]) once it has taken `deadline`.
fn within<S: Clone + Send + Sync + 'static>(
    deadline: Duration,
    route: MethodRouter<S>,
) -> MethodRouter<S> {
    route.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        deadline,
    ))
}

/// The bare `503` of a handler cut off at its deadline ([`within`]), as a JSON error.
async fn explain_deadline(response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "deadline",
            "the service could not answer in time; try again",
        )
        .into_response();
    }
    response
}

/// A panic in a handler, answered as a JSON `500` (and said on stderr) rather than a dropped
/// connection.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    #[allow(clippy::print_stderr, reason = "the service logs to stderr")]
    {
        eprintln!("mxprobe serve: a request failed: {what}; this is a bug, please report it");
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the service failed to answer this request; it has been logged",
    )
    .into_response()
}

/// The router of [`routes`], with JSON answers for unknown paths and methods.
pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    guarded(router)
        .fallback(|| async { ApiError::not_found("no such endpoint; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; see /openapi.json",
            )
        })
        // Uploads are limited by --max-upload-mb as they stream in, not by axum's default
        // (2 MB for multipart bodies).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(app)
}

/// `router` with a handler's deadline and its panics answered as JSON errors.
fn guarded<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(axum::middleware::map_response(explain_deadline))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// The OpenAPI document, as served.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The page, as served.
const PAGE: &str = include_str!("page.html");

/// A refusal, as JSON: `{"error": {"code", "message"}}`, with `Retry-After` when waiting helps.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn no_such_job() -> Self {
        Self::not_found("no such job")
    }

    fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the {limit}-byte limit; split the list into several jobs"),
        )
    }

    fn timed_out() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body came too slowly; the connection is closed",
        )
    }

    fn store(error: &StoreError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_failed",
            format!("{error}; nothing of this request was stored"),
        )
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    fn over(limit: OverLimit) -> Self {
        Self {
            retry_after: Some(limit.retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "over this token's limit of {}; try again in {} s",
                    limit.what, limit.retry_after
                ),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mxprobe\""),
            );
        }
        response
    }
}

/// A handler's outcome, counted in the metrics under its endpoint.
type Answer = Result<Response, ApiError>;

fn counted(app: &App, endpoint: &'static str, answer: Answer) -> Response {
    let response = answer.unwrap_or_else(IntoResponse::into_response);
    app.metrics.request(endpoint, response.status().as_u16());
    response
}

/// The caller, let in and counted against its request rate.
fn caller(app: &App, headers: &HeaderMap) -> Result<Owner, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let owner = app.auth.owner(authorization).map_err(|refused| {
        let message = match refused {
            Refused::Missing => "send the API token as `Authorization: Bearer TOKEN`",
            Refused::Unknown => "that token is not one of this service's",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    })?;
    app.limits.request(&owner).map_err(ApiError::over)?;
    Ok(owner)
}

/// The media type of the body, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

async fn page(State(app): State<Arc<App>>) -> Response {
    let response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
        .into_response();
    app.metrics.request("page", 200);
    response
}

async fn openapi(State(app): State<Arc<App>>) -> Response {
    app.metrics.request("openapi", 200);
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let answer = async {
        if app.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("shutting down"));
        }
        app.read(|store| store.running_jobs().map(|jobs| jobs.len()))
            .await
            .map(|running| {
                axum::Json(json!({"status": "ok", "running_jobs": running})).into_response()
            })
    }
    .await;
    counted(&app, "healthz", answer)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics
        .render(&app.handle.snapshot(), app.in_flight.load(Ordering::SeqCst));
    app.metrics.request("metrics", 200);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `POST /v1/verify`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    address: String,
    timeout_ms: Option<u64>,
}

/// The most a real-time body may hold.
const VERIFY_BODY: usize = 16 * 1024;

async fn verify(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let answer = verify_inner(&app, &headers, body).await;
    if answer.is_ok() {
        app.metrics.real_time(started.elapsed().as_secs_f64());
    }
    counted(&app, "verify", answer)
}

async fn verify_inner(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Answer {
    let owner = caller(app, headers)?;
    if app.shutting_down.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("shutting down; try another instance"));
    }
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(unsupported("application/json"));
    }
    let bytes = small_body(body, VERIFY_BODY, app.settings.body_timeout).await?;
    let request: VerifyRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not {{\"address\": \"...\", \"timeout_ms\": N}}: {e}"
        ))
    })?;
    let timeout = match request.timeout_ms {
        None => app.settings.verify_timeout,
        Some(ms) if (1..=app.settings.max_verify_timeout.as_millis() as u64).contains(&ms) => {
            Duration::from_millis(ms)
        }
        Some(ms) => {
            return Err(ApiError::bad_request(format!(
                "timeout_ms {ms} is out of range: from 1 to {}",
                app.settings.max_verify_timeout.as_millis()
            )));
        }
    };
    app.limits
        .addresses(&owner, 1, SystemTime::now())
        .map_err(ApiError::over)?;
    // A fresh verdict in the cache answers at once.
    if let Ok(parsed) = Address::parse(&request.address) {
        let mailbox = parsed.mailbox().to_owned();
        let now = SystemTime::now();
        let cached = app.read(move |store| store.cached(&mailbox, now)).await?;
        if let Some((reason, record)) =
            cached.and_then(|record| cached_record(&record, &request.address, 1))
        {
            app.metrics.verdict(reason, true);
            return Ok(json_response(StatusCode::OK, record, Some("hit")));
        }
    }
    if let Some(client) = &app.fleet {
        return verify_by_fleet(app, client, request.address, timeout).await;
    }
    let serial = app.serial.fetch_add(1, Ordering::SeqCst);
    let tag = Tag::RealTime(serial).pack();
    let (sender, receiver) = oneshot::channel();
    app.waiters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(tag, sender);
    let handle = app.handle.clone();
    let address = request.address;
    // The real-time way in holds 256 submissions; a full one waits, as long as the request may.
    let submitted = tokio::time::timeout(
        timeout,
        tokio::task::spawn_blocking(move || {
            handle.submit_with(address, tag, SubmitOptions::real_time().deadline(timeout))
        }),
    )
    .await;
    if !matches!(submitted, Ok(Ok(Ok(())))) {
        app.forget(tag);
        return Err(ApiError::unavailable("the engine has stopped"));
    }
    // The engine answers `unknown/timeout` at the deadline by itself; this wait only guards
    // against an engine that no longer answers at all.
    match tokio::time::timeout(timeout + Duration::from_secs(5), receiver).await {
        Ok(Ok(mut result)) => {
            result.tag = 1;
            app.metrics.verdict(result.reason, false);
            Ok(json_response(
                StatusCode::OK,
                record_json(&result),
                Some("miss"),
            ))
        }
        _ => {
            app.forget(tag);
            Err(ApiError::unavailable("the engine did not answer in time"))
        }
    }
}

/// A real-time request answered by a worker of the fleet (`serve --nats`); its verdict goes
/// into the cache as the engine's own would.
async fn verify_by_fleet(
    app: &Arc<App>,
    client: &async_nats::Client,
    address: String,
    timeout: Duration,
) -> Answer {
    let request = fleet::wire::VerifyRequest {
        address,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let mut result = fleet::link::verify(client, &request)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    result.tag = 1;
    app.metrics.verdict(result.reason, false);
    let body = record_json(&result);
    let _ = app.writer.send(Op::Cache(result));
    Ok(json_response(StatusCode::OK, body, Some("miss")))
}

fn record_json(result: &VerifyResult) -> String {
    serde_json::to_string(&result.record()).unwrap_or_else(|e| {
        json!({"error": {"code": "internal", "message": e.to_string()}}).to_string()
    })
}

fn json_response(status: StatusCode, body: String, cache: Option<&'static str>) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(cache) = cache {
        response
            .headers_mut()
            .insert("x-mxprobe-cache", HeaderValue::from_static(cache));
    }
    response
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("send the body as {what} (say so in Content-Type)"),
    )
}

/// A whole small body, within `limit` bytes and `timeout`.
async fn small_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ApiError::timed_out()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(limit as u64))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "the body could not be read: {e}"
        ))),
    }
}

/// Lines sent to the writer at a time while an upload streams in.
const UPLOAD_BATCH: usize = 5_000;

async fn create_job(State(app): State<Arc<App>>, request: Request) -> Response {
    let answer = create_job_inner(&app, request).await;
    counted(&app, "jobs", answer)
}

async fn create_job_inner(app: &Arc<App>, request: Request) -> Answer {
    let owner = caller(app, request.headers())?;
    if app.shutting_down.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("shutting down; try another instance"));
    }
    let query = query_of(request.uri(), &["column", "webhook"])?;
    let webhook = query.get("webhook").cloned();
    if let Some(url) = &webhook {
        super::webhook::check_url(url).map_err(ApiError::bad_request)?;
    }
    let column = query
        .get("column")
        .map(|text| text.parse::<Column>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("column: {e}")))?;
    let running = {
        let owner = owner.0.clone();
        app.read(move |store| store.running_count(&owner)).await?
    };
    if running >= app.limits.max_jobs as u64 {
        return Err(ApiError::over(OverLimit {
            what: "jobs running at once",
            retry_after: 60,
        }));
    }
    let media = media_type(request.headers());
    let format = match media.as_deref() {
        Some("application/json") => Some(Format::Json),
        Some("text/plain") => Some(Format::Lines),
        Some("text/csv") => Some(Format::Csv(
            column
                .clone()
                .unwrap_or(Column::Number(std::num::NonZeroUsize::MIN)),
        )),
        Some("multipart/form-data") => None,
        _ => {
            return Err(unsupported(
                "application/json (an array of strings), text/plain (one address per line), \
                 text/csv (with ?column=) or multipart/form-data (a `file` part)",
            ));
        }
    };
    if column.is_some() && !matches!(format, Some(Format::Csv(_)) | None) {
        return Err(ApiError::bad_request(
            "column applies to CSV only: send Content-Type: text/csv",
        ));
    }
    let upload = app
        .write(|reply| Op::Begin {
            owner: owner.0.clone(),
            reply,
        })
        .await?
        .map_err(|e| ApiError::store(&e))?;
    let mut sink = Sink {
        app,
        owner: &owner,
        upload: Some(upload),
        items: Vec::new(),
        bytes: 0,
    };
    let outcome = match format {
        Some(format) => sink.stream(Parser::new(format), request.into_body()).await,
        None => sink.multipart(request, column).await,
    };
    let upload = sink.upload.take();
    let Some(upload) = upload else {
        return Err(ApiError::unavailable("the store writer has stopped"));
    };
    if let Err(e) = outcome {
        let _ = app.writer.send(Op::Abandon(upload));
        return Err(e);
    }
    let mut upload = upload;
    if let Some(url) = webhook {
        upload.set_webhook(url);
    }
    let lines = upload.lines();
    if let Err(over) = app.limits.addresses(&owner, lines, SystemTime::now()) {
        let _ = app.writer.send(Op::Abandon(upload));
        return Err(ApiError::over(over));
    }
    let id = app
        .write(|reply| Op::Commit { upload, reply })
        .await?
        .map_err(|e| ApiError::store(&e))?;
    let _ = app.feeder.send(Feed::Job(id.clone()));
    let location = format!("/v1/jobs/{id}");
    let body = json!({
        "id": id.as_str(),
        "state": if lines == 0 { "finished" } else { "running" },
        "lines": lines,
        "links": {"self": location},
    });
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// An upload on its way into the store.
struct Sink<'a> {
    app: &'a Arc<App>,
    owner: &'a Owner,
    /// Away at the writer while a batch is being added.
    upload: Option<mxprobe::store::Upload>,
    items: Vec<Item>,
    bytes: u64,
}

impl Sink<'_> {
    /// Streams `body` through `parser` into the store.
    async fn stream(&mut self, mut parser: Parser, mut body: Body) -> Result<(), ApiError> {
        loop {
            let frame = tokio::time::timeout(self.app.settings.body_timeout, body.frame())
                .await
                .map_err(|_| ApiError::timed_out())?;
            match frame {
                None => break,
                Some(Err(e)) => {
                    return Err(ApiError::bad_request(format!("the body broke off: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.chunk(&mut parser, &data).await?;
                    }
                }
            }
        }
        self.finish(parser).await
    }

    /// Takes the `file` part (and a `column` part before it) of a multipart body.
    async fn multipart(
        &mut self,
        request: Request,
        mut column: Option<Column>,
    ) -> Result<(), ApiError> {
        let mut multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("not a multipart body: {e}")))?;
        let mut had_file = false;
        loop {
            let next = tokio::time::timeout(self.app.settings.body_timeout, multipart.next_field())
                .await
                .map_err(|_| ApiError::timed_out())?;
            let mut field = match next {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => {
                    return Err(ApiError::bad_request(format!(
                        "a broken multipart body: {e}"
                    )));
                }
            };
            match field.name().unwrap_or_default() {
                "column" => {
                    let text = field.text().await.map_err(|e| {
                        ApiError::bad_request(format!("the column part is unreadable: {e}"))
                    })?;
                    column = Some(
                        text.parse()
                            .map_err(|e| ApiError::bad_request(format!("column: {e}")))?,
                    );
                }
                "file" if !had_file => {
                    had_file = true;
                    let format =
                        part_format(field.content_type(), field.file_name(), column.clone())?;
                    let mut parser = Parser::new(format);
                    loop {
                        let chunk =
                            tokio::time::timeout(self.app.settings.body_timeout, field.chunk())
                                .await
                                .map_err(|_| ApiError::timed_out())?
                                .map_err(|e| {
                                    ApiError::bad_request(format!("the file part broke off: {e}"))
                                })?;
                        match chunk {
                            Some(data) => self.chunk(&mut parser, &data).await?,
                            None => break,
                        }
                    }
                    self.finish(parser).await?;
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "an unexpected part {other:?}: send one `file` part, and optionally a \
                         `column` part before it"
                    )));
                }
            }
        }
        if had_file {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                "the multipart body has no `file` part",
            ))
        }
    }

    async fn chunk(&mut self, parser: &mut Parser, data: &[u8]) -> Result<(), ApiError> {
        self.bytes += data.len() as u64;
        if self.bytes > self.app.settings.max_upload {
            return Err(ApiError::too_large(self.app.settings.max_upload));
        }
        parser
            .feed(data, &mut self.items)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if self.items.len() >= UPLOAD_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(&mut self, parser: Parser) -> Result<(), ApiError> {
        parser
            .finish(&mut self.items)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.flush().await
    }

    /// Sends the items parsed so far to the store.
    async fn flush(&mut self) -> Result<(), ApiError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let Some(upload) = self.upload.take() else {
            return Err(ApiError::unavailable("the store writer has stopped"));
        };
        // Refused as soon as it is clear, not after the whole upload.
        let lines = upload.lines() + self.items.len() as u64;
        let last = self.items.last().map_or(0, |item| item.line);
        let fits = if last > MAX_LINE {
            Err(ApiError::bad_request(format!(
                "line {last} is beyond the {MAX_LINE} lines a job may have"
            )))
        } else {
            (self.app.limits)
                .check_addresses(self.owner, lines, SystemTime::now())
                .map_err(ApiError::over)
        };
        if let Err(refused) = fits {
            self.upload = Some(upload);
            return Err(refused);
        }
        let lines: Vec<(u64, String)> = self
            .items
            .drain(..)
            .map(|item| (item.line, item.text))
            .collect();
        let (upload, outcome) = self
            .app
            .write(|reply| Op::Lines {
                upload,
                lines,
                reply,
            })
            .await?;
        self.upload = Some(upload);
        outcome.map_err(|e| ApiError::store(&e))
    }
}

/// The format of a multipart `file` part: its content type, else its file name's extension,
/// else lines.
fn part_format(
    content_type: Option<&str>,
    file_name: Option<&str>,
    column: Option<Column>,
) -> Result<Format, ApiError> {
    let essence = content_type.map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let extension = file_name
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let csv = |column: Option<Column>| {
        Format::Csv(column.unwrap_or(Column::Number(std::num::NonZeroUsize::MIN)))
    };
    Ok(match (essence.as_deref(), extension.as_deref()) {
        (Some("text/csv"), _) | (_, Some("csv")) => csv(column),
        (Some("application/json"), _) | (_, Some("json")) => Format::Json,
        _ if column.is_some() => csv(column),
        _ => Format::Lines,
    })
}

/// The query's parameters, refusing any not in `allowed`.
fn query_of(uri: &axum::http::Uri, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map_err(|e| ApiError::bad_request(format!("the query string is malformed: {e}")))?;
    if let Some(unknown) = query.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {unknown:?}; this endpoint takes: {}",
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        )));
    }
    Ok(query)
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    JobId::parse(text).ok_or_else(ApiError::no_such_job)
}

/// Jobs listed in one page at most, and by default.
const MAX_PAGE: usize = 1_000;

async fn list_jobs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let answer = async {
        let owner = caller(&app, &headers)?;
        let query = query_of(&uri, &["limit", "after"])?;
        let limit = match query.get("limit") {
            None => MAX_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit: a number from 1 to {MAX_PAGE}"))
                })?,
        };
        let after = query.get("after").map(|text| job_id(text)).transpose()?;
        let jobs = app
            .read(move |store| store.jobs_after(&owner.0, after.as_ref(), limit))
            .await?;
        let now = SystemTime::now();
        // A full page may have a next one: it starts after this page's last job.
        let next = (jobs.len() == limit)
            .then(|| jobs.last())
            .flatten()
            .map(|job| format!("/v1/jobs?limit={limit}&after={}", job.id));
        let jobs: Vec<Value> = jobs.iter().map(|job| job_json(job, now)).collect();
        Ok(axum::Json(json!({ "jobs": jobs, "next": next })).into_response())
    }
    .await;
    counted(&app, "jobs", answer)
}

async fn show_job(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let owner = caller(&app, &headers)?;
        let id = job_id(&id)?;
        let job = app
            .read(move |store| store.job(&owner.0, &id))
            .await?
            .ok_or_else(ApiError::no_such_job)?;
        Ok(axum::Json(job_json(&job, SystemTime::now())).into_response())
    }
    .await;
    counted(&app, "job", answer)
}

/// What the store learned of a domain from the probes of every caller: its catch-all answer
/// and when it was had, when its servers were last seen greylisting, and its provider. Facts of domains, not
/// of anybody's mailboxes; a domain nothing was learned of has them all null.
async fn show_domain(
    State(app): State<Arc<App>>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        caller(&app, &headers)?;
        // A name alone: nothing the address grammar would read as more than a domain.
        if domain.is_empty()
            || domain
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "@<>\"()[]\\,;:".contains(c))
        {
            return Err(ApiError::bad_request("not a domain name"));
        }
        // Normalised as the engine does it: lower case, A-labels.
        let name = Address::parse(&format!("postmaster@{domain}"))
            .map_err(|e| ApiError::bad_request(format!("not a domain: {e}")))?
            .domain()
            .to_owned();
        let facts = app
            .read(move |store| store.domain(&name).map(|facts| (name, facts)))
            .await?;
        Ok(axum::Json(domain_json(&facts.0, facts.1.as_ref())).into_response())
    }
    .await;
    counted(&app, "domain", answer)
}

/// The JSON of what is known of `domain`.
fn domain_json(domain: &str, facts: Option<&DomainFacts>) -> serde_json::Value {
    let catch_all = facts.and_then(|facts| facts.catch_all);
    serde_json::json!({
        "domain": domain,
        "catch_all": catch_all.map(|(accepts_any, _)| accepts_any),
        "catch_all_checked_ms": catch_all.map(|(_, at)| millis(at)),
        "greylisting_seen_ms": facts.and_then(|facts| facts.greylisted).map(millis),
        "provider": facts.and_then(|facts| facts.provider.as_deref()),
    })
}

async fn cancel_job(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let owner = caller(&app, &headers)?;
        let id = job_id(&id)?;
        let cancelled = app
            .write(|reply| Op::Cancel {
                owner: owner.0.clone(),
                id: id.clone(),
                reply,
            })
            .await?
            .map_err(|e| ApiError::store(&e))?;
        if cancelled {
            let _ = app.feeder.send(Feed::Cancel(id.clone()));
        }
        let job = {
            let id = id.clone();
            app.read(move |store| store.job(&owner.0, &id)).await?
        }
        .ok_or_else(ApiError::no_such_job)?;
        if !cancelled {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_running",
                format!("the job is {} already", job.state.as_str()),
            ));
        }
        Ok(axum::Json(job_json(&job, SystemTime::now())).into_response())
    }
    .await;
    counted(&app, "job", answer)
}

/// Results read from the store at a time while streaming.
const PAGE_SIZE: usize = 1_000;

async fn results(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let answer = results_inner(&app, &id, &headers, &uri).await;
    counted(&app, "results", answer)
}

async fn results_inner(
    app: &Arc<App>,
    id: &str,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Answer {
    let owner = caller(app, headers)?;
    let id = job_id(id)?;
    let query = query_of(uri, &["format", "after"])?;
    let csv = match query.get("format").map(String::as_str) {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?}: say jsonl or csv"
            )));
        }
    };
    let after: u64 = match query.get("after") {
        None => 0,
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request("after: a line number (results after that line come)")
        })?,
    };
    // The first page now, so that a job that is not the caller's is a 404, not an empty stream.
    let first = {
        let (owner, id) = (owner.0.clone(), id.clone());
        app.read(move |store| store.results(&owner, &id, after, PAGE_SIZE))
            .await?
            .ok_or_else(ApiError::no_such_job)?
    };
    // Pages are read as the client takes them: a client that stops reading holds no thread
    // and no page beyond the one being written.
    let pages = Pages {
        app: Arc::clone(app),
        owner: owner.0,
        id,
        csv,
        header: csv,
        first: Some(first),
        after,
        done: false,
    };
    let stream = futures_util::stream::unfold(pages, |mut pages| async move {
        pages.next().await.map(|chunk| (chunk, pages))
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A job's results, a page at a time, as JSON Lines or CSV.
struct Pages {
    app: Arc<App>,
    owner: String,
    id: JobId,
    csv: bool,
    /// The CSV header is still to be sent.
    header: bool,
    /// The page read before the answer began.
    first: Option<Vec<(u64, String)>>,
    /// The last line sent.
    after: u64,
    done: bool,
}

impl Pages {
    /// The next piece of the body; `None` at the end.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.header {
            self.header = false;
            return Some(Ok(Bytes::from(format!(
                "{}\n",
                crate::cli::output::CSV_HEADER
            ))));
        }
        if self.done {
            return None;
        }
        let page = match self.first.take() {
            Some(page) => page,
            None => {
                let (owner, id) = (self.owner.clone(), self.id.clone());
                let after = self.after;
                match self
                    .app
                    .read(move |store| store.results(&owner, &id, after, PAGE_SIZE))
                    .await
                {
                    Ok(Some(page)) => page,
                    Ok(None) => return None,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(std::io::Error::other(e.message)));
                    }
                }
            }
        };
        let &(last, _) = page.last()?;
        self.after = last;
        let mut chunk = Vec::with_capacity(page.len() * 300);
        for (_, record) in &page {
            if self.csv {
                let value: Value = serde_json::from_str(record).unwrap_or(Value::Null);
                if crate::cli::output::csv_line_from_json(&mut chunk, &value).is_err() {
                    continue;
                }
            } else {
                chunk.extend_from_slice(record.as_bytes());
            }
            chunk.push(b'\n');
        }
        Some(Ok(Bytes::from(chunk)))
    }
}

impl App {
    /// Runs `read` on a reader of the store, on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let readers = Arc::clone(&self.readers);
        let path = self.store_path.clone();
        tokio::task::spawn_blocking(move || {
            let reader = readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let reader = match reader {
                Some(reader) => reader,
                None => Store::open_reader(&path).map_err(|e| ApiError::store(&e))?,
            };
            let outcome = read(&reader).map_err(|e| ApiError::store(&e));
            readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(reader);
            outcome
        })
        .await
        .map_err(|_| ApiError::unavailable("a store reader failed"))?
    }

    /// Asks the writer to do `op` and waits for its answer.
    async fn write<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(op(reply))
            .map_err(|_| ApiError::unavailable("the store writer has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::unavailable("the store writer has stopped"))
    }

    /// Forgets the waiter of a real-time request that gave up.
    fn forget(&self, tag: u64) {
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&tag);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tower::ServiceExt;

    use super::*;

    /// A handler past its deadline, and one that panics: each a JSON error, not a hang or a
    /// dropped connection.
    #[tokio::test]
    async fn a_handler_past_its_deadline_or_panicking_is_a_json_error() {
        let router: Router = guarded(
            Router::new()
                .route(
                    "/slow",
                    within(
                        Duration::from_millis(20),
                        get(|| async {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            "late"
                        }),
                    ),
                )
                .route(
                    "/panic",
                    get(|| async {
                        if std::hint::black_box(true) {
                            panic!("boom");
                        }
                        "never"
                    }),
                ),
        );
        for (path, status, code) in [
            ("/slow", StatusCode::SERVICE_UNAVAILABLE, "deadline"),
            ("/panic", StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ] {
            let request = Request::builder()
                .uri(path)
                .body(Body::empty())
                .expect("a request");
            let response =
                tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
                    .await
                    .expect("answered in time")
                    .expect("infallible");
            assert_eq!(response.status(), status, "{path}");
            let body = response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let error: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(error["error"]["code"], code, "{path}: {error}");
        }
    }

    /// The OpenAPI document names exactly the routes the router is made of: none missing from
    /// it, none it promises that the server lacks.
    #[test]
    fn the_openapi_document_and_the_router_have_the_same_routes() {
        let document: Value = serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(document["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                if method != "parameters" {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let served: BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(method, path, _)| (method.as_str().to_owned(), path.to_owned()))
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn a_multipart_file_part_says_its_format_by_type_or_name() {
        let number = |n| Column::Number(std::num::NonZeroUsize::new(n).unwrap());
        let cases = [
            (Some("text/csv"), None, None, Format::Csv(number(1))),
            (
                None,
                Some("list.CSV"),
                Some(number(3)),
                Format::Csv(number(3)),
            ),
            (Some("application/json"), Some("x.txt"), None, Format::Json),
            (None, Some("list.json"), None, Format::Json),
            (Some("text/plain"), Some("list.txt"), None, Format::Lines),
            (None, None, None, Format::Lines),
            (
                Some("application/octet-stream"),
                None,
                Some(number(2)),
                Format::Csv(number(2)),
            ),
        ];
        for (content_type, name, column, expected) in cases {
            let format = part_format(content_type, name, column).unwrap();
            assert_eq!(format, expected, "{content_type:?} {name:?}");
        }
    }
}
