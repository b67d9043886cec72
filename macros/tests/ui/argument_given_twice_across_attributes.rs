use leak_check::leak_check;

#[leak_check(flavor = "multi_thread")]
#[tokio::test(flavor = "multi_thread")]
async fn both_places() {}

fn main() {}
