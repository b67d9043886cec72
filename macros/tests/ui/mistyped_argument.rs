use leak_check::leak_check;

#[leak_check(worker_threads = "two", flavor = "multi_thread")]
async fn mistyped() {}

fn main() {}
