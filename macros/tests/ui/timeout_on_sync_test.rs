use leak_check::leak_check;

#[leak_check(timeout_ms = 1000)]
#[test]
fn sync_test() {}

fn main() {}
