use leak_check::leak_check;

// The module's `timeout_ms` goes to its async tests only; a sync test's own is an error.
#[leak_check(timeout_ms = 30000)]
mod tests {
    #[test]
    fn sync_gets_no_module_timeout() {}

    #[leak_check(timeout_ms = 1000)]
    #[test]
    fn sync_with_its_own() {}
}

fn main() {}
