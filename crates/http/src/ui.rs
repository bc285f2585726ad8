//! The web view: one page and its script and style, embedded in the
//! binary (no build step, no CDN), served under `/ui`.

use axum::extract::OriginalUri;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");

/// The page. It finds the API relative to where the router is mounted,
/// which only the original URI knows (`nest` strips the prefix).
pub async fn page(OriginalUri(uri): OriginalUri) -> Html<String> {
    let path = uri.path().trim_end_matches('/');
    let mount = path.strip_suffix("/ui").unwrap_or("");
    let base = format!("{}/", escape(mount));
    Html(INDEX.replace("{{BASE}}", &base))
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
        .into_response()
}

/// `s` safe inside an HTML attribute.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_finds_the_api_where_the_router_is_mounted() {
        for (path, base) in [
            ("/statedb/ui", "/statedb/"),
            ("/statedb/ui/", "/statedb/"),
            ("/ui", "/"),
            ("/a/b/ui", "/a/b/"),
        ] {
            let uri: axum::http::Uri = path.parse().unwrap();
            let Html(page) = page(OriginalUri(uri)).await;
            assert!(
                page.contains(&format!("data-base=\"{base}\"")),
                "{path}: {page}"
            );
            assert!(page.contains(&format!("src=\"{base}ui/app.js\"")));
            assert!(!page.contains("{{BASE}}"));
        }
        assert_eq!(escape("/a\"<b>&"), "/a&quot;&lt;b&gt;&amp;");
    }
}
