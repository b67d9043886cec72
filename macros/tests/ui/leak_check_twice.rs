use leak_check::leak_check;

#[leak_check]
#[leak_check]
async fn checked_twice() {}

fn main() {}
