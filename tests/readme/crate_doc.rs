use std::time::Duration;

use leak_check::leak_check;

#[leak_check]
#[tokio::test]
async fn the_flusher_is_stopped() {
    let flusher = leak_check::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await; // flush a buffer
        }
    });
    // ... the test's work ...

    // Without this line, the flusher outlives the test, and the test fails with a report.
    flusher.abort();
}
