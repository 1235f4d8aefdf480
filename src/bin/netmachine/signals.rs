//! SIGINT and SIGTERM as a flag: the handler only sets a static atomic, which the command's own
//! loop polls (every 100 ms in `run`). Nothing else happens on the signal's stack.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler when SIGINT or SIGTERM arrives.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Storing to an atomic is async-signal-safe.
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// The signals that ask a command to stop.
const SIGNALS: [(libc::c_int, &str); 2] = [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")];

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> Result<(), String> {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for (signal, name) in SIGNALS {
        // SAFETY: the handler is an `extern "C"` function that only stores to a static atomic,
        // which is async-signal-safe; `signal` is called with a valid signal number.
        let previous = unsafe { libc::signal(signal, handler) };
        if previous == libc::SIG_ERR {
            return Err(format!(
                "cannot install a {name} handler: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Restores the default action, so a second Ctrl-C during a slow shutdown ends the process.
pub fn restore_default() {
    for (signal, _) in SIGNALS {
        // SAFETY: resetting a valid signal number to its default action.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
}

/// Whether SIGINT or SIGTERM has arrived since [`install`].
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}
