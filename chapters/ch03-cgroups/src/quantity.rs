//! Sizes and CPU amounts as people write them: docker's `16g` and `0.5`, Kubernetes' `16Gi` and
//! `500m`.

use crate::CgroupError;

// ANCHOR: quantities
/// Parses a docker-style size: a number with an optional unit b, k, m, g, t (powers of 1024, as
/// `docker run --memory` takes them). `16g` is 17179869184 bytes.
pub fn parse_docker_bytes(text: &str) -> Result<u64, CgroupError> {
    let bad = |reason: &str| CgroupError::BadValue {
        what: "size",
        value: text.into(),
        reason: reason.into(),
    };
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = lower.split_at(
        lower
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(lower.len()),
    );
    let multiplier: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad("unknown unit; use b, k, m, g or t (e.g. 64m, 16g)")),
    };
    scale(number, multiplier as f64).ok_or_else(|| bad("not a positive number"))
}

/// Parses a Kubernetes memory quantity: plain bytes, decimal suffixes k, M, G, T (powers of
/// 1000), binary Ki, Mi, Gi, Ti (powers of 1024), or an exponent (`129e6`).
pub fn parse_k8s_bytes(text: &str) -> Result<u64, CgroupError> {
    let bad = |reason: &str| CgroupError::BadValue {
        what: "memory quantity",
        value: text.into(),
        reason: reason.into(),
    };
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "m" => {
            return Err(bad(
                "milli-bytes make no sense for memory; did you mean M or Mi?",
            ))
        }
        _ => {
            return Err(bad(
                "unknown suffix; use Ki, Mi, Gi (powers of 1024) or k, M, G (powers of 1000)",
            ))
        }
    };
    scale(number, multiplier).ok_or_else(|| bad("not a positive number"))
}

/// Parses a CPU amount in thousandths of a CPU: `2` or `1.5` CPUs, or Kubernetes' `500m`.
pub fn parse_millicpus(text: &str) -> Result<u64, CgroupError> {
    let bad = |reason: &str| CgroupError::BadValue {
        what: "CPU amount",
        value: text.into(),
        reason: reason.into(),
    };
    let text = text.trim();
    let millis = match text.strip_suffix('m') {
        Some(number) => scale(number, 1.0),
        None => scale(text, 1000.0),
    }
    .ok_or_else(|| bad("not a positive number of CPUs (e.g. 2, 0.5 or 500m)"))?;
    if millis == 0 {
        return Err(bad("must be at least 1m (a thousandth of a CPU)"));
    }
    Ok(millis)
}
// ANCHOR_END: quantities

fn scale(number: &str, multiplier: f64) -> Option<u64> {
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * multiplier).round() as u64)
}

/// Formats bytes for people: `64 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_sizes() {
        assert_eq!(parse_docker_bytes("16g").unwrap(), 16 << 30);
        assert_eq!(parse_docker_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_docker_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_docker_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_docker_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_docker_bytes("64mb").unwrap(), 64 << 20);
        assert!(parse_docker_bytes("12x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_docker_bytes("-5m").is_err());
    }

    #[test]
    fn kubernetes_quantities() {
        assert_eq!(parse_k8s_bytes("16Gi").unwrap(), 16 << 30);
        assert_eq!(parse_k8s_bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_k8s_bytes("129e6").unwrap(), 129_000_000);
        assert_eq!(parse_k8s_bytes("128974848").unwrap(), 128_974_848);
        assert!(parse_k8s_bytes("500m")
            .unwrap_err()
            .to_string()
            .contains("milli-bytes"));
        assert_eq!(parse_millicpus("500m").unwrap(), 500);
        assert_eq!(parse_millicpus("2").unwrap(), 2000);
        assert_eq!(parse_millicpus("0.25").unwrap(), 250);
        assert!(parse_millicpus("0").is_err());
        assert!(parse_millicpus("many").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(100), "100 B");
    }
}
