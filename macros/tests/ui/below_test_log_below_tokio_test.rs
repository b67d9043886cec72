use leak_check::leak_check;

// test-log between the two puts its own prologue before the body `#[tokio::test]` wrote: the
// order is still wrong.
#[tokio::test]
#[test_log::test]
#[leak_check]
async fn wrong_order_behind_test_log() {}

fn main() {}
