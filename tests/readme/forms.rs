use std::sync::LazyLock;

use leak_check::leak_check;
use tokio::runtime::Runtime;

// a. Above #[tokio::test], with any of its arguments (but `flavor = "local"`: leak-check
//    builds no LocalRuntime, and says so at compile time).
#[leak_check]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a() {}

// b. Alone on an async fn, with the same arguments; leak-check builds the runtime.
#[leak_check(flavor = "multi_thread", worker_threads = 2, grace_ms = 250)]
async fn b() {}

// c. On a plain #[test] whose tasks run on a runtime that outlives the test.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| Runtime::new().unwrap());

#[leak_check]
#[test]
fn c() {
    let handle = leak_check::spawn_on(async { 1 }, RUNTIME.handle());
    RUNTIME.block_on(handle).unwrap();
}
