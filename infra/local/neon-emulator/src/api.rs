//! HTTP: routes, bearer-key auth, fault injection, exchange recording.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::{Body, Bytes, to_bytes},
    extract::{Path, Query, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::state::{Answer, ApiError, Emulator, err};

/// The panic payload that stands for "drop this connection without answering".
pub const DROP_CONNECTION: &str = "neon-emulator: dropping the connection (fault injection)";

type App = Arc<Emulator>;

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        axum::Json(json!({"code": "", "message": e.message})),
    )
        .into_response();
    response.headers_mut().insert(
        "x-neon-ret-request-id",
        HeaderValue::from_static("neon-emulator"),
    );
    response
}

fn respond(answer: Answer) -> Response {
    match answer {
        Ok((204, _)) => StatusCode::NO_CONTENT.into_response(),
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(body),
        )
            .into_response(),
        Err(e) => error_response(&e),
    }
}

/// A write's answer, unless a fault says to drop the connection after doing the work.
fn respond_write(app: &App, answer: Answer) -> Response {
    if answer.is_ok() {
        let mut faults = app.faults.lock().unwrap();
        if faults.drop_after_write > 0 {
            faults.drop_after_write -= 1;
            drop(faults);
            std::panic::panic_any(DROP_CONNECTION);
        }
    }
    respond(answer)
}

fn json_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| err(400, format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(err(400, "the body must be a JSON object"));
    }
    Ok(value)
}

async fn auth(State(app): State<App>, request: Request, next: Next) -> Response {
    let expected = format!("Bearer {}", app.api_key);
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return error_response(&err(
            401,
            "authentication required: send Authorization: Bearer <API key>",
        ));
    }
    next.run(request).await
}

async fn faults(State(app): State<App>, request: Request, next: Next) -> Response {
    // Per request: `X-Neon-Emulator-Fault: 503`.
    if let Some(status) = request
        .headers()
        .get("x-neon-emulator-fault")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u16>().ok())
    {
        return error_response(&err(status, "injected by X-Neon-Emulator-Fault"));
    }
    let queued = {
        let mut faults = app.faults.lock().unwrap();
        match faults.http.first_mut() {
            Some((status, remaining, retry_after)) => {
                let fault = (*status, *retry_after);
                *remaining -= 1;
                if *remaining == 0 {
                    faults.http.remove(0);
                }
                Some(fault)
            }
            None => None,
        }
    };
    if let Some((status, retry_after)) = queued {
        let message = match status {
            423 => {
                "project already has running conflicting operations, scheduling of new ones is prohibited"
            }
            429 => "too many requests",
            _ => "injected fault",
        };
        let mut response = error_response(&err(status, message));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }
    next.run(request).await
}

/// Appends `{method, path, query, request, status, response}` to the record file.
async fn record(State(app): State<App>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 16 << 20).await.unwrap_or_default();
    let request_json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let response_json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    app.record(&json!({
        "method": method, "path": path, "query": query,
        "request": request_json, "status": status, "response": response_json,
    }));
    Response::from_parts(parts, Body::from(bytes))
}

type Q = Query<HashMap<String, String>>;

pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{project}", get(get_project))
        .route(
            "/projects/{project}/branches",
            get(list_branches).post(create_branch),
        )
        .route(
            "/projects/{project}/branches/{branch}",
            get(get_branch).patch(update_branch).delete(delete_branch),
        )
        .route(
            "/projects/{project}/branches/{branch}/restore",
            post(restore_branch),
        )
        .route(
            "/projects/{project}/branches/{branch}/endpoints",
            get(branch_endpoints),
        )
        .route(
            "/projects/{project}/branches/{branch}/databases",
            get(list_databases).post(create_database),
        )
        .route(
            "/projects/{project}/branches/{branch}/roles",
            get(list_roles),
        )
        .route(
            "/projects/{project}/branches/{branch}/roles/{role}",
            get(get_role),
        )
        .route(
            "/projects/{project}/branches/{branch}/roles/{role}/reveal_password",
            get(reveal_password),
        )
        .route("/projects/{project}/endpoints", get(project_endpoints))
        .route("/projects/{project}/operations", get(list_operations))
        .route(
            "/projects/{project}/operations/{operation}",
            get(get_operation),
        )
        .route("/projects/{project}/connection_uri", get(connection_uri))
        .fallback(|method: Method, uri: axum::http::Uri| async move {
            error_response(&err(
                404,
                format!("neon-emulator does not serve {method} {}", uri.path()),
            ))
        })
        .layer(middleware::from_fn_with_state(app.clone(), faults))
        .layer(middleware::from_fn_with_state(app.clone(), record));
    let admin = Router::new().route(
        "/_emulator/faults",
        post(set_faults).delete(clear_faults).get(show_faults),
    );
    // The API under /api/v2, as Neon serves it (NEON_API_HOST=http://HOST:PORT/api/v2), and at
    // the root as well.
    Router::new()
        .merge(admin)
        .nest("/api/v2", api.clone())
        .merge(api)
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app)
}

async fn list_projects(State(app): State<App>) -> Response {
    respond(app.list_projects())
}

async fn create_project(State(app): State<App>, body: Bytes) -> Response {
    let answer = match json_body(&body) {
        Ok(body) => app.create_project(&body).await,
        Err(e) => Err(e),
    };
    respond_write(&app, answer)
}

async fn get_project(State(app): State<App>, Path(project): Path<String>) -> Response {
    respond(app.get_project(&project))
}

async fn list_branches(
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    respond(app.list_branches(&project, &q))
}

async fn create_branch(
    State(app): State<App>,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let answer = match json_body(&body) {
        Ok(body) => app.create_branch(&project, &body).await,
        Err(e) => Err(e),
    };
    respond_write(&app, answer)
}

async fn get_branch(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
) -> Response {
    respond(app.get_branch(&project, &branch))
}

async fn update_branch(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let answer = json_body(&body).and_then(|body| app.update_branch(&project, &branch, &body));
    respond_write(&app, answer)
}

async fn delete_branch(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
) -> Response {
    let answer = app.delete_branch(&project, &branch);
    respond_write(&app, answer)
}

async fn restore_branch(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let answer = match json_body(&body) {
        Ok(body) => app.restore_branch(&project, &branch, &body).await,
        Err(e) => Err(e),
    };
    respond_write(&app, answer)
}

async fn branch_endpoints(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
) -> Response {
    respond(app.branch_endpoints(&project, &branch))
}

async fn project_endpoints(State(app): State<App>, Path(project): Path<String>) -> Response {
    respond(app.project_endpoints(&project))
}

async fn list_databases(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
) -> Response {
    respond(app.list_databases(&project, &branch))
}

async fn create_database(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let answer = match json_body(&body) {
        Ok(body) => app.create_database(&project, &branch, &body).await,
        Err(e) => Err(e),
    };
    respond_write(&app, answer)
}

async fn list_roles(
    State(app): State<App>,
    Path((project, branch)): Path<(String, String)>,
) -> Response {
    respond(app.list_roles(&project, &branch))
}

async fn get_role(
    State(app): State<App>,
    Path((project, branch, role)): Path<(String, String, String)>,
) -> Response {
    respond(app.get_role(&project, &branch, &role))
}

async fn reveal_password(
    State(app): State<App>,
    Path((project, branch, role)): Path<(String, String, String)>,
) -> Response {
    respond(app.reveal_password(&project, &branch, &role))
}

async fn list_operations(
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    respond(app.list_operations(&project, &q))
}

async fn get_operation(
    State(app): State<App>,
    Path((project, operation)): Path<(String, String)>,
) -> Response {
    respond(app.get_operation(&project, &operation))
}

async fn connection_uri(
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Q,
) -> Response {
    respond(app.connection_uri(&project, &q))
}

/// `POST /_emulator/faults` with any of:
/// `{"http": {"status": 429, "times": 3, "retry_after": 1}}`, `{"fail_operations": 1}`,
/// `{"drop_after_write": 1}`, `{"operation_delay_ms": 2000}`.
async fn set_faults(State(app): State<App>, body: Bytes) -> Response {
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let mut faults = app.faults.lock().unwrap();
    if let Some(http) = body.get("http") {
        let status = http.get("status").and_then(Value::as_u64).unwrap_or(503) as u16;
        let times = http.get("times").and_then(Value::as_u64).unwrap_or(1) as u32;
        let retry_after = http.get("retry_after").and_then(Value::as_u64);
        faults.http.push((status, times.max(1), retry_after));
    }
    if let Some(n) = body.get("fail_operations").and_then(Value::as_u64) {
        faults.fail_operations += n as u32;
    }
    if let Some(n) = body.get("drop_after_write").and_then(Value::as_u64) {
        faults.drop_after_write += n as u32;
    }
    if let Some(ms) = body.get("operation_delay_ms").and_then(Value::as_u64) {
        *app.operation_delay.lock().unwrap() = std::time::Duration::from_millis(ms);
    }
    (
        StatusCode::OK,
        axum::Json(json!({"faults": format!("{:?}", *faults)})),
    )
        .into_response()
}

async fn clear_faults(State(app): State<App>) -> Response {
    *app.faults.lock().unwrap() = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn show_faults(State(app): State<App>) -> Response {
    let faults = app.faults.lock().unwrap();
    (
        StatusCode::OK,
        axum::Json(json!({"faults": format!("{:?}", *faults)})),
    )
        .into_response()
}
