//! The log writer: lines are appended to one shared buffer and a thread of its own writes the
//! buffer to the output in batches, so a request that logs never waits on stderr, allocates
//! nothing for its line and wakes no thread.
//!
//! Under load the writer thread wakes on its own every [`BATCH_INTERVAL`] and writes whatever
//! arrived meanwhile in one `write`; only a line that finds it idle (parked, nothing queued)
//! wakes it. tracing-appender's non-blocking writer, used before, sent each line through a
//! channel as a `Vec` of its own and woke the thread for most of them: under `wrk`, a system
//! call and an allocation per request.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

/// How long lines gather before the writer writes them, once it is awake: the most a line waits
/// under load.
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// The most bytes queued for the writer. Past it new lines are dropped, as tracing-appender's
/// lossy writer did: a proxy in front of tills must keep answering when stderr is stalled, and
/// a lost log line is the smaller harm.
const QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// How long the last lines get to leave at exit before the process stops waiting for a stalled
/// output.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

struct Shared {
    queued: Mutex<Queued>,
    /// The writer found nothing to write and parked: the next line must wake it.
    idle: AtomicBool,
}

#[derive(Default)]
struct Queued {
    bytes: Vec<u8>,
    closed: bool,
}

/// Where lines go: cheap to clone, `MakeWriter` for the fmt layer and [`Lines::push`] for a line
/// made by hand.
#[derive(Clone)]
pub struct Lines(Option<Queue>);

/// The queue and the thread that empties it.
#[derive(Clone)]
struct Queue {
    shared: Arc<Shared>,
    writer: thread::Thread,
}

/// Stops the writer thread when dropped, after it wrote what is queued (within
/// [`FLUSH_AT_EXIT`]).
pub struct LinesGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `output`.
pub fn start(output: impl Write + Send + 'static) -> std::io::Result<(Lines, LinesGuard)> {
    let shared = Arc::new(Shared {
        queued: Mutex::new(Queued::default()),
        idle: AtomicBool::new(false),
    });
    let thread = thread::Builder::new()
        .name("svp-log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, output)
        })?;
    let lines = Lines(Some(Queue {
        shared: shared.clone(),
        writer: thread.thread().clone(),
    }));
    Ok((
        lines,
        LinesGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Lines {
    /// Lines written to stderr by the thread that makes them, for when the writer thread could
    /// not start: slower, but nothing is lost.
    pub fn direct() -> Lines {
        Lines(None)
    }

    /// Queues `line` (one or more whole lines, each ending in `\n`) for the writer.
    pub fn push(&self, line: &[u8]) {
        let Some(queue) = &self.0 else {
            let _ = std::io::stderr().write_all(line);
            return;
        };
        queue.push(line);
    }
}

impl Queue {
    fn push(&self, line: &[u8]) {
        {
            let mut queued = self.shared.queued.lock();
            if queued.closed || queued.bytes.len() + line.len() > QUEUE_LIMIT {
                return;
            }
            queued.bytes.extend_from_slice(line);
        }
        if self.shared.idle.swap(false, Ordering::AcqRel) {
            self.writer.unpark();
        }
    }
}

/// The writer thread: takes the whole queue, writes it, waits a little for more; parks when
/// there was nothing.
fn write_batches(shared: &Shared, mut output: impl Write) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut queued = shared.queued.lock();
            std::mem::swap(&mut batch, &mut queued.bytes);
            queued.closed
        };
        if !batch.is_empty() {
            // Nowhere to report a failed write to: stderr is where it would go.
            let _ = output.write_all(&batch).and_then(|()| output.flush());
            batch.clear();
            if !closed {
                thread::park_timeout(BATCH_INTERVAL);
                continue;
            }
        }
        if closed {
            return;
        }
        shared.idle.store(true, Ordering::Release);
        // A line queued between the look above and `idle` being set found the writer not yet
        // idle and woke nobody: look again before parking.
        if shared.queued.lock().bytes.is_empty() {
            thread::park();
        }
        shared.idle.store(false, Ordering::Release);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> &'a Lines {
        self
    }
}

/// The fmt layer formats an event whole and writes it with one `write_all`.
impl Write for &Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LinesGuard {
    fn drop(&mut self) {
        self.shared.queued.lock().closed = true;
        let Some(thread) = self.thread.take() else {
            return;
        };
        thread.thread().unpark();
        // Joined from a helper so that a stalled output costs the exit at most FLUSH_AT_EXIT.
        let (done, wait) = std::sync::mpsc::channel();
        let joiner = thread::spawn(move || {
            let _ = thread.join();
            let _ = done.send(());
        });
        if wait.recv_timeout(FLUSH_AT_EXIT).is_ok() {
            let _ = joiner.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;

    /// An output that records each `write` it gets, so a test sees the batches.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shared(lines: &Lines) -> &Shared {
        &lines.0.as_ref().expect("a writer thread").shared
    }

    impl Recorded {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        }
    }

    #[test]
    fn lines_queued_together_leave_in_one_write_and_all_leave_by_exit() {
        let output = Recorded::default();
        let (lines, guard) = start(output.clone()).unwrap();
        let mut expected = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i}\n");
            lines.push(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
        }
        drop(guard);
        let writes = output.writes();
        assert_eq!(writes.concat(), expected, "every line, in order");
        assert!(
            writes.len() < 100,
            "1,000 lines in {} writes: not batched",
            writes.len()
        );
    }

    #[test]
    fn an_idle_writer_is_woken_by_the_next_line() {
        let output = Recorded::default();
        let (lines, _guard) = start(output.clone()).unwrap();
        for round in 0..3 {
            // Idle: nothing queued, so the writer parks with no timeout.
            while !shared(&lines).idle.load(Ordering::Acquire) {
                thread::yield_now();
            }
            lines.push(format!("round {round}\n").as_bytes());
            let mut waited = Duration::ZERO;
            while output.writes().len() <= round {
                assert!(waited < Duration::from_secs(5), "the line was not written");
                thread::sleep(Duration::from_millis(1));
                waited += Duration::from_millis(1);
            }
        }
        assert_eq!(output.writes().concat(), b"round 0\nround 1\nround 2\n");
    }

    #[test]
    fn past_the_limit_lines_are_dropped_not_waited_for() {
        /// An output that never returns until told, like a stalled pipe.
        struct Stalled(std::sync::mpsc::Receiver<()>);
        impl Write for Stalled {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (release, stalled) = std::sync::mpsc::channel();
        let (lines, guard) = start(Stalled(stalled)).unwrap();
        let line = vec![b'x'; 1024];
        // Far more than the limit: every push returns at once.
        for _ in 0..(3 * QUEUE_LIMIT / line.len()) {
            lines.push(&line);
        }
        assert!(shared(&lines).queued.lock().bytes.len() <= QUEUE_LIMIT);
        drop(release);
        drop(guard);
    }
}
