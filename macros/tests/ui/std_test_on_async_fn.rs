use leak_check::leak_check;

#[leak_check]
#[test]
async fn needs_a_runtime() {}

fn main() {}
