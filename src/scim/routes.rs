//! How SCIM URLs reach their handlers: the `/scim/v2` scope, one resource per endpoint that
//! answers any method it does not serve with 405 and an `Allow` header (RFC 7231 §6.5.5, the
//! RFC 7644 §3.12 error body), and the slash normalisation that lets the URLs clients build
//! from a tenant URL (`…/scim/v2/` + `/Users`, `/Users/`) find the same routes.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Uri};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, Resource, ResponseError, Scope};

use crate::scim_core::error::ScimError;

/// The path prefix of every SCIM route.
pub const SCIM_PREFIX: &str = "/scim/v2";

/// The SCIM scope: every route, and a SCIM 404 for any other path below it.
pub fn scope() -> Scope {
    web::scope(SCIM_PREFIX)
        .configure(super::configure)
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ScimError::not_found("no such SCIM endpoint"))
        }))
}

/// A resource at `path` whose methods not routed on it answer 405 naming `allow`.
pub fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut res = ScimError::new(405, None, format!("this endpoint supports only {allow}"))
            .error_response();
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        res
    }))
}

/// The path a SCIM request is routed by, when it differs from the one sent: runs of `/`
/// collapsed and a trailing `/` dropped. Paths outside `/scim/v2` are left alone, so the
/// portal and admin routes keep their exact matching.
pub fn normalized(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    let under_scim = out == SCIM_PREFIX
        || out
            .strip_prefix(SCIM_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'));
    (under_scim && out != path).then_some(out)
}

/// Middleware rewriting a SCIM request's path with [`normalized`] before routing.
pub async fn normalize_path(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(path) = normalized(req.uri().path()) {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn collapses_slashes_and_trims_the_trailing_one_only_under_scim() {
        assert_eq!(
            normalized("/scim/v2/Users/").as_deref(),
            Some("/scim/v2/Users")
        );
        assert_eq!(
            normalized("/scim/v2//Users").as_deref(),
            Some("/scim/v2/Users")
        );
        assert_eq!(
            normalized("//scim/v2/Users/x/").as_deref(),
            Some("/scim/v2/Users/x")
        );
        assert_eq!(normalized("/scim/v2/").as_deref(), Some("/scim/v2"));
        assert_eq!(normalized("/scim/v2/Users"), None);
        assert_eq!(normalized("/scim/v2x/Users/"), None);
        assert_eq!(normalized("/api/v1/guests/"), None);
        assert_eq!(normalized("/invite//abc"), None);
    }
}
