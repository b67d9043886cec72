use leak_check::leak_check;

// A mistake in a test's own arguments inside a module is reported once, at its token.
#[leak_check(grace_ms = 200)]
mod tests {
    #[leak_check(worker_threads = 2)]
    #[tokio::test]
    async fn current_thread_with_workers() {}
}

fn main() {}
