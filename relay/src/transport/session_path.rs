//! Which WebTransport CONNECT paths are this relay's: `/`, and the path of the public
//! WebTransport URL it hands out (a gateway or proxy may put one there). Anything else is
//! answered 404 rather than taken as a session.

/// The path of `url` (`https://host:port/path?query` → `/path`), `/` when it has none.
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("/", |at| &rest[at..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Whether a session request for `requested` (its `:path`, query included) is one of ours,
/// given the public WebTransport URL, if one is configured.
pub fn is_session_path(requested: &str, public_url: Option<&str>) -> bool {
    let requested = requested.split(['?', '#']).next().unwrap_or("");
    requested == "/"
        || public_url.is_some_and(|url| {
            path_of(url).trim_end_matches('/') == requested.trim_end_matches('/')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_the_public_path_are_sessions_and_nothing_else() {
        assert!(is_session_path("/", None));
        assert!(is_session_path("/?x=1", None));
        assert!(!is_session_path("/favicon.ico", None));
        assert!(!is_session_path("", None));
        assert!(!is_session_path("/ws", None));
        let public = Some("https://relay-{server_id}.meet.example.org:443/wt/");
        assert!(is_session_path("/wt", public));
        assert!(is_session_path("/wt/", public));
        assert!(is_session_path("/", public));
        assert!(!is_session_path("/wt/other", public));
        assert!(!is_session_path("/other", Some("https://127.0.0.1:4433/")));
    }

    #[test]
    fn paths_of_urls() {
        assert_eq!(path_of("https://127.0.0.1:4433/"), "/");
        assert_eq!(path_of("https://127.0.0.1:4433"), "/");
        assert_eq!(path_of("https://h/a/b?q#f"), "/a/b");
    }
}
