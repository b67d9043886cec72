use leak_check::leak_check;

// An attribute cannot see into a module kept in another file.
#[leak_check]
#[path = "support/elsewhere.rs"]
mod elsewhere;

fn main() {}
