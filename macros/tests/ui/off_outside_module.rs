use leak_check::leak_check;

#[leak_check(off)]
#[tokio::test]
async fn not_in_a_module() {}

fn main() {}
