use leak_check::leak_check;
use serial_test::serial;

// `#[serial]` between the two wraps the body `#[tokio::test]` wrote: the order is still wrong.
#[tokio::test]
#[serial]
#[leak_check]
async fn wrong_order_behind_serial() {}

fn main() {}
