//! Strict `application/x-www-form-urlencoded` parsing, for pages, OAuth endpoints and guards
//! alike: invalid UTF-8 and repeated names are refused (a repeated name is ambiguous, and
//! parameter pollution relies on exactly that).

use crate::AppError;
use std::collections::HashSet;

/// Decodes a form body (or a query string) into its pairs, in order.
pub fn parse_pairs(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if !seen.insert(k.clone()) {
            return Err(AppError::bad_request(
                "invalid_form",
                format!("The field `{k}` appears more than once."),
            ));
        }
        pairs.push((k, v));
    }
    Ok(pairs)
}

fn decode(raw: &[u8]) -> Result<String, AppError> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| AppError::bad_request("invalid_form", "The form is not valid UTF-8."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        let p = parse_pairs(b"email=a%40b.c&password=x+y&empty=").unwrap();
        assert_eq!(
            p,
            vec![
                ("email".into(), "a@b.c".into()),
                ("password".into(), "x y".into()),
                ("empty".into(), "".into()),
            ]
        );
        assert!(parse_pairs(b"a=1&a=2").is_err());
        assert!(parse_pairs(b"a=%ff%fe").is_err());
    }
}
