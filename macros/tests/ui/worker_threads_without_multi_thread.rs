use leak_check::leak_check;

#[leak_check(worker_threads = 2)]
async fn one_thread() {}

fn main() {}
