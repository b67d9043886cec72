use leak_check::leak_check;

// A helper under `#[tokio::main]`: its runtime is dropped inside the function, with its tasks.
#[tokio::main(flavor = "current_thread")]
#[leak_check]
async fn starts_a_server() {}

fn main() {
    starts_a_server();
}
