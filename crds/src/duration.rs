//! Go-style durations used in the spec (`30s`, `5m`, `1h30m`, `500ms`): one parser shared by
//! validation and the rollout state machine, so both agree on what a pause means.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty string.
    #[error("empty duration")]
    Empty,
    /// A unit without a number before it, or a number without a unit after it.
    #[error("malformed duration {0:?}: expected number+unit pairs such as 30s, 5m, 1h30m")]
    Malformed(String),
    /// A unit other than ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {input:?} (use ms, s, m, h)")]
    UnknownUnit {
        /// The input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Larger than u64 milliseconds.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a sequence of `<digits><unit>` pairs, units `ms`, `s`, `m`, `h`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let bytes = input.as_bytes();
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let number = &input[start..i];
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &input[unit_start..i];
        if number.is_empty() || unit.is_empty() {
            return Err(DurationError::Malformed(input.to_string()));
        }
        let factor: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_string(),
                    unit: other.to_string(),
                })
            }
        };
        let value: u64 = number
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_string()))?;
        total_ms = value
            .checked_mul(factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn rejects_empty_missing_number_and_missing_unit() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("m"),
            Err(DurationError::Malformed("m".into()))
        );
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::Malformed("10".into()))
        );
    }

    #[test]
    fn rejects_unknown_units() {
        assert_eq!(
            parse_duration("3d"),
            Err(DurationError::UnknownUnit {
                input: "3d".into(),
                unit: "d".into()
            })
        );
    }

    #[test]
    fn rejects_overflowing_values() {
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow("99999999999999999999h".into()))
        );
    }
}
