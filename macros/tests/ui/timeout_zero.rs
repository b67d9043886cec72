use leak_check::leak_check;

#[leak_check(timeout_ms = 0)]
async fn no_time_at_all() {}

fn main() {}
