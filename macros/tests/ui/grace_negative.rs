use leak_check::leak_check;

#[leak_check(grace_ms = -1)]
async fn before_it_ends() {}

fn main() {}
