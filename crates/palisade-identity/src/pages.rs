//! Page templates (askama escapes every value). Each page gets the CSRF token for its forms and
//! whether someone is signed in, for the header.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use palisade_http::AppError;
use palisade_http::error::PassThrough;

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignUp<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub error: Option<&'a str>,
    pub min_password_length: usize,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub return_to: &'a str,
    pub login_hint: &'a str,
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
pub struct LoginMfa<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub error: Option<&'a str>,
    pub return_to: &'a str,
}

pub struct SessionRow {
    pub handle: String,
    pub user_agent: String,
    pub ip: String,
    pub created: String,
    pub last_seen: String,
    pub current: bool,
}

pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub email: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    pub sessions: Vec<SessionRow>,
    pub totp_enabled: bool,
    pub recovery_remaining: i64,
    pub passkeys: Vec<PasskeyRow>,
    pub min_password_length: usize,
}

#[derive(Template)]
#[template(path = "totp_enroll.html")]
pub struct TotpEnroll<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub error: Option<&'a str>,
    pub secret: &'a str,
    pub uri: &'a str,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodes<'a> {
    pub csrf: &'a str,
    pub signed_in: bool,
    pub codes: &'a [String],
}

/// Renders a page with a status. Error statuses are marked so the error renderer keeps the page
/// (a login form with its message) instead of replacing it with the generic error page.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            if status.is_client_error() {
                response.extensions_mut().insert(PassThrough);
            }
            response
        }
        Err(e) => AppError::internal(format!("template: {e}")).into_response(),
    }
}

/// A UTC timestamp for display, `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_709_210_096_000), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn values_are_escaped() {
        let page = Login {
            csrf: "t",
            signed_in: false,
            notice: None,
            error: Some("<script>alert(1)</script>"),
            return_to: "\"><x",
            login_hint: "",
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(!html.contains("\"><x"));
    }
}
