use leak_check::leak_check;

#[leak_check(flavor = "multi_thread")]
#[test]
fn sync_test() {}

fn main() {}
