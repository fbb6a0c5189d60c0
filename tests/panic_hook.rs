//! The panic hook the binary installs: a panic becomes one tracing error line with its location
//! and a literal message only; a formatted message (which could carry request data) is never
//! logged.
//!
//! No request can make the proxy panic (that would be a bug, and the known ones are fixed), so
//! the hook is tried on panics of its own. A binary of its own: the hook is process-wide and
//! would swallow the messages of other tests' failing assertions.

mod common;

use common::Captured;
use sitoo_voyado_proxy::telemetry::logging::install_panic_hook;

#[test]
fn a_panic_is_logged_through_tracing_without_its_formatted_message() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let secret = String::from("anna.andersson@example.com");
    {
        // The panics below happen on this thread, so a thread-local subscriber sees the hook's
        // lines.
        let _logging = tracing::subscriber::set_default(subscriber);
        install_panic_hook();
        let formatted = std::panic::catch_unwind(|| panic!("no contact for {secret}"));
        let literal = std::panic::catch_unwind(|| panic!("a literal message"));
        // Back to the default hook, so a failing assertion below prints its message.
        drop(std::panic::take_hook());
        assert!(formatted.is_err() && literal.is_err());
    }
    let logs = captured.text();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 2, "one line per panic:\n{logs}");
    for line in &lines {
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("panic"), "{line}");
        assert!(line.contains("tests/panic_hook.rs:"), "no location: {line}");
    }
    assert!(
        lines[0].contains("(formatted message not logged)"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("a literal message"), "{}", lines[1]);
    assert!(
        !logs.contains(&secret),
        "the formatted message was logged:\n{logs}"
    );
    assert!(!logs.contains("no contact for"), "{logs}");
}
