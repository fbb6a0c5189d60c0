//! A child process the test started, killed and reaped when the test ends, however it ends.
//! Included by path (`#[path = "support/child.rs"]`) where a test starts the binary.

/// A child process killed (and reaped) on drop.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
