//! `netmachine chaos`: a UDP fault proxy in front of a node (see `netmachine::chaos`), run until
//! SIGINT or SIGTERM.
//!
//! Prints `chaos <listen> -> <forward> seed <n>` once the proxy is up (the seed is random unless
//! `--seed` is given; pass it back with `--seed` to replay the same fault decisions), and the
//! counters when it stops. Invalid options exit with status 2.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use netmachine::chaos::{Chaos, ChaosConfig};

use crate::signals;

/// How often the command checks for a stop signal.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The command line of `netmachine chaos`.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// UDP address to listen on: peers dial this address instead of the node's.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// UDP address of the node behind the proxy.
    #[arg(long, value_name = "ADDR")]
    forward: SocketAddr,
    /// Probability that a datagram is dropped, in [0, 1].
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          allow_negative_numbers = true)]
    loss: f64,
    /// Probability that a datagram is sent twice, in [0, 1].
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          allow_negative_numbers = true)]
    dup: f64,
    /// Probability that a datagram is held back and sent after the next one, in [0, 1].
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          allow_negative_numbers = true)]
    reorder: f64,
    /// Delay added to every datagram, in milliseconds.
    #[arg(long = "delay-ms", value_name = "D", default_value_t = 0, value_parser = parse_ms,
          allow_negative_numbers = true)]
    delay_ms: u64,
    /// Uniform jitter around the delay (delay ± jitter, never negative), in milliseconds.
    #[arg(long = "jitter-ms", value_name = "J", default_value_t = 0, value_parser = parse_ms,
          allow_negative_numbers = true)]
    jitter_ms: u64,
    /// Probability that 1 to 3 random bits of a datagram are flipped, in [0, 1].
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability,
          allow_negative_numbers = true)]
    corrupt: f64,
    /// Drop everything for ON_S seconds, then pass for OFF_S seconds, repeating from the start
    /// (for example `5,2`; fractions allowed).
    #[arg(long, value_name = "ON_S,OFF_S", value_parser = parse_blackhole)]
    blackhole: Option<(Duration, Duration)>,
    /// Seed of the fault decisions (random if not given; printed at start).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// A probability in [0, 1].
fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability in [0, 1]"))
    }
}

/// Milliseconds, at most an hour.
fn parse_ms(text: &str) -> Result<u64, String> {
    let ms: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number of milliseconds"))?;
    if ms > netmachine::chaos::MAX_DELAY_MS {
        return Err(format!(
            "{ms} ms is longer than the limit of {} ms",
            netmachine::chaos::MAX_DELAY_MS
        ));
    }
    Ok(ms)
}

/// `ON_S,OFF_S`: two positive numbers of seconds.
fn parse_blackhole(text: &str) -> Result<(Duration, Duration), String> {
    let malformed = || format!("'{text}' is not ON_S,OFF_S (two positive numbers of seconds)");
    let (on, off) = text.split_once(',').ok_or_else(malformed)?;
    let seconds = |s: &str| -> Result<Duration, String> {
        let v: f64 = s.trim().parse().map_err(|_| malformed())?;
        if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
            return Err(malformed());
        }
        Duration::try_from_secs_f64(v).map_err(|_| malformed())
    };
    Ok((seconds(on)?, seconds(off)?))
}

/// Runs the proxy until SIGINT or SIGTERM. Status 2 for a configuration the proxy refuses,
/// 1 if it cannot start.
pub fn run(args: &ChaosArgs) -> ExitCode {
    let seed = args.seed.unwrap_or_else(random_seed);
    let config = ChaosConfig {
        listen: args.listen,
        forward: args.forward,
        loss: args.loss,
        dup: args.dup,
        reorder: args.reorder,
        delay_ms: args.delay_ms,
        jitter_ms: args.jitter_ms,
        corrupt: args.corrupt,
        blackhole: args.blackhole,
        seed,
    };
    if let Err(e) = config.validate() {
        eprintln!("netmachine: chaos: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = signals::install() {
        eprintln!("netmachine: {e}");
        return ExitCode::FAILURE;
    }
    let proxy = match Chaos::start(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "netmachine: chaos: cannot start the proxy on {}: {e}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    println!(
        "chaos {} -> {} seed {seed}",
        proxy.listen_addr(),
        proxy.forward_addr()
    );
    // Scripts wait for this line; make sure it leaves now.
    let _ = std::io::stdout().flush();
    while !signals::stop_requested() {
        std::thread::sleep(POLL_EVERY);
    }
    signals::restore_default();
    let counters = proxy.stop();
    println!("chaos stopped (seed {seed})\n{counters}");
    ExitCode::SUCCESS
}

/// A seed from the operating system's random source (the clock if that fails).
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_or_explain() {
        assert_eq!(parse_probability("0.25"), Ok(0.25));
        assert_eq!(parse_probability("1"), Ok(1.0));
        assert!(parse_probability("1.5").unwrap_err().contains("[0, 1]"));
        assert!(parse_probability("-0.1").is_err());
        assert!(parse_probability("NaN").is_err());
        assert!(parse_probability("x").unwrap_err().contains("not a number"));
        assert_eq!(
            parse_blackhole("5,2"),
            Ok((Duration::from_secs(5), Duration::from_secs(2)))
        );
        assert_eq!(
            parse_blackhole(" 0.5 , 1.5 "),
            Ok((Duration::from_millis(500), Duration::from_millis(1500)))
        );
        for bad in [
            "5", "5,", ",2", "5;2", "0,2", "5,-1", "a,b", "5,2,1", "inf,1",
        ] {
            assert!(parse_blackhole(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_ms("20"), Ok(20));
        assert!(parse_ms("-1").is_err());
        assert!(parse_ms("3600001").is_err());
    }
}
