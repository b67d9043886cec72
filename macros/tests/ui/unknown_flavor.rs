use leak_check::leak_check;

#[leak_check(flavor = "threaded")]
async fn unknown_flavor() {}

fn main() {}
