use leak_check::leak_check;

#[leak_check(grace_ms)]
async fn no_value() {}

fn main() {}
