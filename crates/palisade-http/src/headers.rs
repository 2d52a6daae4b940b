//! Security headers (PLT-8) on every response. Pages load scripts and styles from this origin
//! only and never inline; nothing may frame them; no referrer leaves the site.

use http::{HeaderName, HeaderValue, Response, header};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The origin (`scheme://host[:port]`) of an absolute http(s) URI, if it is a plain one.
fn origin_of(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let plain = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    plain.then(|| &uri[..uri.len() - rest.len() + authority.len()])
}

/// Lets the forms of a page lead, through redirects, to `target`'s origin: browsers apply
/// `form-action` to every redirect after a form is submitted, so a page whose form ends at an
/// application (consent, sign-in for an application, logout) must name its origin. A target
/// that is not a plain http(s) URI leaves the policy as strict as ever.
pub fn allow_form_target<B>(response: &mut Response<B>, target: &str) {
    if let Some(origin) = origin_of(target) {
        let policy = CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

pub fn apply<B>(response: &mut Response<B>) {
    let h = response.headers_mut();
    let set = |h: &mut http::HeaderMap, name: HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(
        h,
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on the
    // site's own form posts, which the CSRF origin check must refuse.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_targets_add_only_plain_origins() {
        let policy = |target: &str| {
            let mut r = Response::new(());
            allow_form_target(&mut r, target);
            r.headers()
                .get(header::CONTENT_SECURITY_POLICY)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert!(
            policy("https://app.example:8443/cb?x=1")
                .unwrap()
                .contains("form-action 'self' https://app.example:8443;")
        );
        assert!(
            policy("http://127.0.0.1:5000/callback")
                .unwrap()
                .contains("form-action 'self' http://127.0.0.1:5000;")
        );
        for unsafe_target in [
            "https://evil.example; script-src *",
            "javascript:alert(1)",
            "/relative",
            "https://user@app.example/",
        ] {
            assert_eq!(policy(unsafe_target), None, "{unsafe_target}");
        }
    }
}
