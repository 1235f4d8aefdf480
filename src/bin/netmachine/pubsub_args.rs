//! Parsers of the `publish` and `subscribe` options, with the messages a user sees for a bad
//! value.

use netmachine::pubsub::PubSubLimits;
use netmachine::TopicIdentity;

use super::pubsub_cmd::{MAX_SIZE, MAX_TIMEOUT_S, MIN_SIZE};

/// Parses `--count`: a whole number, at least 1.
pub fn parse_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number from 1 to {}", u64::MAX)),
    }
}

/// Parses `--size`: bytes, from [`MIN_SIZE`] to [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (MIN_SIZE..=MAX_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of bytes from {MIN_SIZE} (the sequence number) to {MAX_SIZE} \
             (1 MiB)"
        )),
    }
}

/// Parses `--timeout-s`: seconds, from 1 to [`MAX_TIMEOUT_S`].
pub fn parse_timeout_s(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_TIMEOUT_S).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a whole number of seconds from 1 to {MAX_TIMEOUT_S} (one year)"
        )),
    }
}

/// Parses `--wait-subscribers`: from 0 to the most children a topic may have.
pub fn parse_wait_subscribers(s: &str) -> Result<usize, String> {
    let max = PubSubLimits::default().max_children;
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "expected a number of peers from 0 to {max} (the most subscribing peers a topic \
             may have)"
        )),
    }
}

/// Parses `--topic`: a topic identity in hex.
pub fn parse_topic(s: &str) -> Result<TopicIdentity, String> {
    s.parse::<TopicIdentity>().map_err(|_| {
        format!(
            "{s:?} is not a topic identity (64 hex characters, as `netmachine keygen` prints \
             for the topic key)"
        )
    })
}
