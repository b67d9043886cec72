use leak_check::leak_check;

#[leak_check(flavour = "multi_thread")]
async fn misspelled() {}

fn main() {}
