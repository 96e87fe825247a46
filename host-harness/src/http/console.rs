//! The admin console's page and assets at `/admin`, embedded in the binary
//! from `host-harness/console/` (no CDN: it works with no internet). The
//! page calls only `/admin/v1`; every answer here carries a
//! Content-Security-Policy that forbids inline script and style and any
//! other origin, and refuses to be framed.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The console's files, compiled into the binary in every build
/// (rust-embed's `debug-embed`), so tests serve what a release serves.
#[derive(rust_embed::Embed)]
#[folder = "console/"]
struct Assets;

/// The policy of every console answer: only this server's own scripts,
/// styles, images and API; no inline code, no frames, no foreign forms.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// `GET /admin` and `/admin/`: the console's page.
pub async fn page(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

/// `GET /admin/assets/{*file}`: a script, stylesheet or image of the
/// console.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    file(&path, &headers)
}

fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(f) = Assets::get(path) else {
        return secured(
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "No such console file\n",
            )
                .into_response(),
            true,
        );
    };
    let html = path.ends_with(".html");
    let etag = format!("\"{}\"", hex::encode(f.metadata.sha256_hash()));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh && !html {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            f.data.into_owned(),
        )
            .into_response()
    };
    if !html && let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    secured(r, html)
}

/// The console's security headers. The page is never stored (it is
/// small, and a browser's back button must not show it after sign-out);
/// assets are revalidated by their ETag, so an upgrade is seen at once.
fn secured(mut r: Response, no_store: bool) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if no_store { "no-store" } else { "no-cache" }),
    );
    r
}

/// The media type of a console file, by its extension.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_javascript_and_unknown_files_are_bytes() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x/Style.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }

    #[test]
    fn the_page_is_embedded() {
        assert!(Assets::get("index.html").is_some());
        assert!(Assets::get("../Cargo.toml").is_none());
    }
}
