use leak_check::leak_check;

#[leak_check]
#[tokio::test]
#[test]
async fn two_test_attributes() {}

fn main() {}
