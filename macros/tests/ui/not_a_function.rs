use leak_check::leak_check;

#[leak_check]
struct Server;

fn main() {}
