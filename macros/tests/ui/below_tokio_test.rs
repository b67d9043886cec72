use leak_check::leak_check;

#[tokio::test]
#[leak_check]
async fn wrong_order() {}

fn main() {}
