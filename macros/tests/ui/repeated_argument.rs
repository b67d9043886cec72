use leak_check::leak_check;

#[leak_check(grace_ms = 100, grace_ms = 200)]
async fn twice() {}

fn main() {}
