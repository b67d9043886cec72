use leak_check::leak_check;

#[leak_check(allow_sites = ["src/ok.rs", 42])]
async fn allow_list() {}

fn main() {}
