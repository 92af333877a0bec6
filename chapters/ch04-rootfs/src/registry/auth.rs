//! Anonymous Bearer tokens, as Docker Hub hands them out.
//!
//! ```text
//! GET /v2/library/busybox/manifests/1.36
//!   <- 401  WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
//!                             service="registry.docker.io",scope="repository:library/busybox:pull"
//! GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/busybox:pull
//!   <- 200  {"token":"eyJ…","expires_in":300}
//! GET /v2/library/busybox/manifests/1.36     Authorization: Bearer eyJ…
//!   <- 200
//! ```
//!
//! The token is good for that repository and those actions only; the client keeps it for the
//! rest of the pull and fetches a new one if the registry says 401 again.

use ureq::http::HeaderMap;
use ureq::Agent;

use super::RegistryError;

/// The largest token response read (real ones are a few kilobytes).
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// A parsed `WWW-Authenticate: Bearer …` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The token endpoint.
    pub realm: String,
    /// The `service` parameter to pass back.
    pub service: Option<String>,
    /// The scope the registry says is needed (`repository:NAME:pull`), if it says.
    pub scope: Option<String>,
}

/// The scope a pull of `repository` needs.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope a push to `repository` needs.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

// ANCHOR: challenge
/// Finds the Bearer challenge among a 401's `WWW-Authenticate` headers.
pub fn challenge_of(headers: &HeaderMap, url: &str) -> Result<Challenge, RegistryError> {
    let values: Vec<String> = headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    for value in &values {
        if let Some(challenge) = parse_bearer(value) {
            return Ok(challenge);
        }
    }
    let challenge = values.join(" / ");
    Err(RegistryError::UnsupportedAuth {
        url: url.to_string(),
        scheme: challenge
            .split_whitespace()
            .next()
            .unwrap_or("none")
            .to_string(),
        challenge: if challenge.is_empty() {
            "no WWW-Authenticate header".to_string()
        } else {
            challenge
        },
    })
}

/// Parses `Bearer realm="…",service="…",scope="…"`; `None` for other schemes or no realm.
pub fn parse_bearer(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key=value` pairs separated by commas; values plain or quoted (with `\` escapes, and commas
/// inside quotes, as in `scope="repository:x:pull,push"`).
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                    .collect::<String>()
                    .trim()
                    .to_string();
            }
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
}

/// Asks the challenge's token endpoint, anonymously, for a token for `scope` (the challenge's
/// own scope when it names one).
pub fn fetch_token(
    agent: &Agent,
    challenge: &Challenge,
    default_scope: &str,
) -> Result<String, RegistryError> {
    let scope = challenge.scope.as_deref().unwrap_or(default_scope);
    let fail = |detail: String| RegistryError::Token {
        realm: challenge.realm.clone(),
        scope: scope.to_string(),
        detail,
    };
    if !(challenge.realm.starts_with("https://") || challenge.realm.starts_with("http://")) {
        return Err(fail("the realm is not an http(s) URL".to_string()));
    }
    let mut request = agent.get(&challenge.realm).query("scope", scope);
    if let Some(service) = &challenge.service {
        request = request.query("service", service);
    }
    let response = request
        .call()
        .map_err(|e| fail(format!("{e}; check the network")))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .into_with_config()
        .limit(MAX_TOKEN_RESPONSE)
        .read_to_vec()
        .map_err(|e| fail(format!("reading the answer: {e}")))?;
    if status != 200 {
        return Err(fail(format!(
            "it answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("the answer is not token JSON: {e}")))?;
    parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("the answer has neither `token` nor `access_token`".to_string()))
}
// ANCHOR_END: challenge

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_challenge_parses() {
        let c = parse_bearer(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn quoted_commas_escapes_and_plain_values_parse() {
        let c = parse_bearer(r#"bearer  realm = "http://h/t" , scope="repository:x:pull,push",service=plain, error="a\"b""#)
            .unwrap();
        assert_eq!(c.realm, "http://h/t");
        assert_eq!(c.scope.as_deref(), Some("repository:x:pull,push"));
        assert_eq!(c.service.as_deref(), Some("plain"));
    }

    #[test]
    fn other_schemes_and_missing_realms_are_not_bearer() {
        assert_eq!(parse_bearer(r#"Basic realm="registry""#), None);
        assert_eq!(parse_bearer(r#"Bearer service="x""#), None);
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer(""), None);
    }
}
