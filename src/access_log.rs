//! The optional per-router access log (`httpAccessLog`, as in linkerd 1).
//!
//! A shard formats one line per exchange and hands it to a writer thread
//! through a bounded channel with `try_send`: a full channel (a slow disk)
//! drops the line and counts it instead of ever making a shard wait. The
//! writer batches lines and flushes whenever the channel runs dry, so a
//! line reaches the file within one batch of being logged.
//!
//! Line format (one per exchange; Common Log Format first, then ours):
//!
//! ```text
//! 10.0.0.7 - - [2026-11-27T18:01:02.345Z] "GET /path HTTP/1.1" 200 1234 "www.hello.world" "curl/8.5.0" dst=/svc/www.hello.world us=412
//! ```
//!
//! The byte count is what was sent of the response, head and body; `dst` is the logical name
//! (`-` when routing failed); `us` is the exchange's duration. Quotes,
//! backslashes and control bytes in client-supplied fields are escaped, so
//! one exchange is always one line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

/// Lines waiting for the writer before shards start dropping them.
const ACCESS_LOG_QUEUE_LINES: usize = 16 * 1024;

/// The shards' end of one access log.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Lines dropped so far because the writer fell behind.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Queues a line; never blocks.
    pub fn log(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Opens (appending, creating if needed) the file and starts its writer
/// thread, which flushes and ends when every [`AccessLog`] clone is gone.
pub fn open(path: &Path) -> Result<(AccessLog, std::thread::JoinHandle<()>), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (tx, rx) = sync_channel(ACCESS_LOG_QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let d = dropped.clone();
    let p = path.to_owned();
    let writer = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_loop(file, p, rx, d))
        .map_err(|e| format!("cannot start the access log thread: {e}"))?;
    Ok((AccessLog { tx, dropped }, writer))
}

fn write_loop(file: std::fs::File, path: PathBuf, rx: Receiver<String>, dropped: Arc<AtomicU64>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    let mut reported = 0;
    // Blocks until a line comes; ends when every shard is gone.
    while let Ok(first) = rx.recv() {
        let mut failed = false;
        for line in std::iter::once(first).chain(rx.try_iter()) {
            failed |= out.write_all(line.as_bytes()).is_err();
        }
        failed |= out.flush().is_err();
        if failed {
            tracing::warn!(path = %path.display(), "cannot write the access log");
        }
        let now = dropped.load(Ordering::Relaxed);
        if now != reported {
            tracing::warn!(path = %path.display(), dropped = now - reported, "access log lines dropped: the writer fell behind");
            reported = now;
        }
    }
    let _ = out.flush();
}

/// Appends `v` with `"`, `\` and bytes outside printable ASCII escaped.
pub fn push_escaped(line: &mut String, v: &[u8]) {
    use std::fmt::Write as _;
    for &b in v {
        match b {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            0x20..=0x7e => line.push(b as char),
            _ => {
                let _ = write!(line, "\\x{b:02x}");
            }
        }
    }
}

/// `t` as RFC 3339 UTC with milliseconds.
pub fn push_time(line: &mut String, t: SystemTime) {
    use std::fmt::Write as _;
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        line,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        let mut s = String::new();
        push_time(&mut s, SystemTime::UNIX_EPOCH);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        // 2024-02-29T12:34:56.789Z: a leap day.
        push_time(
            &mut s,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_709_210_096_789),
        );
        assert_eq!(s, "2024-02-29T12:34:56.789Z");
        s.clear();
        push_time(
            &mut s,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_599),
        );
        assert_eq!(s, "2026-12-31T23:59:59.000Z");
    }

    #[test]
    fn client_fields_cannot_break_lines() {
        let mut s = String::new();
        push_escaped(&mut s, b"a\"b\\c\nd\xff");
        assert_eq!(s, "a\\\"b\\\\c\\x0ad\\xff");
    }
}
