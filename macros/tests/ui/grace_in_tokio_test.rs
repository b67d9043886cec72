use leak_check::leak_check;

#[leak_check]
#[tokio::test(grace_ms = 100)]
async fn grace_in_the_wrong_place() {}

fn main() {}
